// AXI4-Stream beat type for the engine's s_axis / m_axis ports.
//
// Under Vitis HLS (synthesis, or csim with the Vitis include path) the beat is the vendor's
// ap_axiu<W,0,0,0>: only that type makes the tool emit separate TKEEP/TSTRB/TLAST signals, which
// docs/engine.md requires. The hls4ml wheel that plain g++ builds against ships ap_int.h and
// hls_stream.h but not ap_axi_sdata.h, so there we fall back to a struct with the same member
// names. Kernels touch only `data`, `keep`, `strb` and `last`, which both types have.
#ifndef VITFPGA_AXIS_H
#define VITFPGA_AXIS_H

#include "ap_int.h"

#if defined(__SYNTHESIS__)
#define VITFPGA_VENDOR_AXIS 1
#elif defined(__has_include)
#if __has_include(<ap_axi_sdata.h>)
#define VITFPGA_VENDOR_AXIS 1
#endif
#endif

#ifdef VITFPGA_VENDOR_AXIS
#include "ap_axi_sdata.h"
#endif

namespace vitfpga {

#ifdef VITFPGA_VENDOR_AXIS
template <int W>
struct axis_beat {
    typedef ap_axiu<W, 0, 0, 0> type;
};
#else
// Stand-in for ap_axiu<W,0,0,0> when the vendor header is absent (g++ csim only).
template <int W>
struct axis_word {
    ap_uint<W> data;
    ap_uint<(W + 7) / 8> keep;
    ap_uint<(W + 7) / 8> strb;
    ap_uint<1> last;
};
template <int W>
struct axis_beat {
    typedef axis_word<W> type;
};
#endif

}  // namespace vitfpga

#endif  // VITFPGA_AXIS_H
