// The requantisation rule of docs/engine.md, written once for C++ (Python's twin is
// vitfpga.quant.golden.requantize; the two are compared bit for bit by the csim tests).
//
//   y = clamp((acc * M + 2^(S-1)) >>> S, lo, 127),  lo = 0 with ReLU else -128
//
// acc is int32 and M < 2^31, so |acc*M| <= 2^62 and the rounding term is at most 2^61: the whole
// expression fits signed 64 bits, which is why the arithmetic is ap_int<64> and not wider.
// ReLU is a run-time flag because one engine runs layers with and without it; in hardware it
// only selects the lower clamp bound.
#ifndef VITFPGA_REQUANT_H
#define VITFPGA_REQUANT_H

#include "ap_int.h"

namespace vitfpga {

inline ap_int<8> requant(const ap_int<32>& acc, const ap_uint<31>& mult, const ap_uint<6>& shift,
                         bool relu) {
#pragma HLS INLINE
    // int32 x uint31 is exact in 63 signed bits; HLS maps it to DSPs without a 64x64 multiply.
    const ap_int<64> product = acc * mult;
    const ap_uint<6> s_minus_1 = shift - 1;  // S >= 1; unsigned keeps the shifter one-way
    const ap_int<64> half = ap_int<64>(1) << s_minus_1;
    const ap_int<64> scaled = (product + half) >> shift;  // >> on ap_int is arithmetic
    const ap_int<64> lo = relu ? 0 : -128;
    const ap_int<64> hi = 127;
    const ap_int<64> y = scaled < lo ? lo : (scaled > hi ? hi : scaled);
    return ap_int<8>(y);
}

}  // namespace vitfpga

#endif  // VITFPGA_REQUANT_H
