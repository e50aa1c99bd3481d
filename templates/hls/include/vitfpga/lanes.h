// Fixed-width lanes inside wide words: the packing rule of vitfpga.hls.layout, in C++.
//
// Lane i of a word occupies bits [i*BITS, (i+1)*BITS) and is two's complement, so decoding is a
// slice plus a reinterpretation; with a constant `i` (unrolled loops) it costs only wiring.
#ifndef VITFPGA_LANES_H
#define VITFPGA_LANES_H

#include "ap_int.h"

namespace vitfpga {

// Signed lane `i` of `word`.
template <int BITS, int W>
inline ap_int<BITS> lane_s(const ap_uint<W>& word, unsigned i) {
#pragma HLS INLINE
    const ap_uint<BITS> raw = word.range(i * BITS + BITS - 1, i * BITS);
    ap_int<BITS> value;
    value.range(BITS - 1, 0) = raw;  // bit copy: reinterpret as two's complement
    return value;
}

// Unsigned lane `i` of `word`.
template <int BITS, int W>
inline ap_uint<BITS> lane_u(const ap_uint<W>& word, unsigned i) {
#pragma HLS INLINE
    return word.range(i * BITS + BITS - 1, i * BITS);
}

// Store `value`'s bit pattern into lane `i` of `word`.
template <int BITS, int W, int VW, bool VS>
inline void set_lane(ap_uint<W>& word, unsigned i, const ap_int_base<VW, VS>& value) {
#pragma HLS INLINE
    word.range(i * BITS + BITS - 1, i * BITS) = ap_uint<BITS>(value.range(BITS - 1, 0));
}

}  // namespace vitfpga

#endif  // VITFPGA_LANES_H
