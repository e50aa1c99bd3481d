// Streaming weight decoders (docs/engine.md, "Weight streams and decoders"), written once for
// every model: the generated config.h supplies only the constants below, never decoder code.
//
// Each of the PE*SIMD lanes reads one element of E bits (the program entry's `ebits`) per
// iteration from its bit stream in the weight memory and turns it into the weight it multiplies
// and, for N:M, the input it multiplies:
//   dense (codec 0)    w = sign-extend elem[B-1:0]           x = lane s of beat sf
//   nm    (codec 1)    w = sign-extend elem[P +: B],         x = window[(s/N)*M + elem[P-1:0]]
//   codebook (codec 2) w = table[elem[E-1:0]] (int8 lanes)  x = lane s of beat sf
//   ternary (codec 3)  w = trit (it mod 3) of elem - 1       x = lane s of beat sf
// B is the entry's `wbits`, P = ceil(log2 M). The window is the R = M/N input beats of the
// iteration, input j = lane j mod SIMD of its beat j div SIMD. A ternary element (5 bits,
// t0 + 3*t1 + 9*t2) serves three iterations: the kernel takes a new one when it mod 3 == 0 and
// keeps it for the next two, so only those iterations advance the stream.
//
// Stream position: the element of iteration `it` starts at lane-stream bit it*E. The kernel
// (vitfpga/mvu.h) keeps it as a word counter `lo` and an offset `off` within word lo, counted in
// OFFSET_STEP-bit steps (every element width is a multiple of OFFSET_STEP, so these are the only
// offsets that occur: the offset selector below has LANE_BITS/OFFSET_STEP positions). An element
// with off + E > LANE_BITS straddles into word lo+1; its first part is in word lo, which is the
// word the previous iteration read (that iteration's last bit sat in word lo), so one weight word
// read per iteration suffices: the kernel reads word lo + straddle and keeps the previous one.
//
// CFG supplies: PE, SIMD, WBITS, LANE_BITS, OFFSET_STEP, WIDTH_MASK (bit b set when some dense or
// N:M layer has b-bit weights), NM_N, NM_M (0 without N:M layers), CB_BITS (0 without codebook
// layers), TERNARY (0 without ternary layers), CODEC_NM, CODEC_CODEBOOK, CODEC_TERNARY, and the
// types word_t, cb_word_t.
#ifndef VITFPGA_WDEC_H
#define VITFPGA_WDEC_H

#include "ap_int.h"
#include "vitfpga/lanes.h"

namespace vitfpga {

// ceil(log2 N), at least 1: the bits of an N:M position and of the decoders' small counters.
template <unsigned N>
struct clog2 {
    static const unsigned value = N <= 2 ? 1 : 1 + clog2<(N + 1) / 2>::value;
};
template <>
struct clog2<1> {
    static const unsigned value = 1;
};

// Sign-extend the low `bits` bits of `v` to OUT bits, for any width K <= TOP whose bit is set in
// MASK (a multiplexer over the design's widths; any other `bits` gives 0). A class template
// because each width is its own compile-time slice.
template <int OUT, int W, unsigned MASK, int K>
struct sext_any {
    static ap_int<OUT> apply(const ap_uint<W>& v, const ap_uint<8>& bits) {
#pragma HLS INLINE
        const bool used = (MASK >> K) & 1u;
        if (used && bits == K) {
            ap_int<K> value;
            value.range(K - 1, 0) = v.range(K - 1, 0);  // reinterpret as two's complement
            return ap_int<OUT>(value);
        }
        return sext_any<OUT, W, MASK, K - 1>::apply(v, bits);
    }
};
template <int OUT, int W, unsigned MASK>
struct sext_any<OUT, W, MASK, 0> {
    static ap_int<OUT> apply(const ap_uint<W>&, const ap_uint<8>&) {
#pragma HLS INLINE
        return 0;
    }
};

template <class CFG>
struct wdec {
    static const unsigned W = CFG::LANE_BITS;
    static const unsigned STEPS = CFG::LANE_BITS / CFG::OFFSET_STEP;  // offsets in a lane
    static const bool HAS_NM = CFG::NM_N > 0;
    static const bool HAS_CB = CFG::CB_BITS > 0;
    static const bool HAS_TERNARY = CFG::TERNARY != 0;
    // Stand-ins without N:M (a window of one beat) or codebook keep every expression well
    // formed; the flags above make the code that uses them constant-false.
    static const unsigned NM_N = HAS_NM ? CFG::NM_N : 1;
    static const unsigned NM_M = HAS_NM ? CFG::NM_M : 1;
    static const unsigned R = NM_M / NM_N;  // input beats per N:M iteration
    static const unsigned P = clog2<NM_M>::value;  // position bits of an N:M element
    static const unsigned CB = HAS_CB ? CFG::CB_BITS : 1;
    static const unsigned WIN = R * CFG::SIMD;  // inputs in an iteration's window
    static const int SEXT_TOP = W < 8 ? int(W) : 8;  // widest weight a lane can hold

    typedef ap_uint<W> elem_t;
    typedef ap_int<CFG::WBITS> weight_t;
    typedef ap_uint<clog2<2 * STEPS + 1>::value> step_t;  // offsets, and offset + E
    typedef ap_uint<CB + 1> cb_mask_t;
    typedef ap_uint<5> trits_t;  // a ternary element: t0 + 3*t1 + 9*t2, each trit w + 1
    typedef ap_uint<2> phase_t;  // it mod 3 of a ternary layer's iteration, else 0

    // Lane `i`'s element: bits [off*OFFSET_STEP, +W) of {cur, straddle ? held : cur} in that
    // lane. Bits at and above E are the next element's and are ignored by the decoders.
    static elem_t element(const typename CFG::word_t& cur, const typename CFG::word_t& held,
                          bool straddle, const step_t& off, unsigned i) {
#pragma HLS INLINE
        const elem_t hi = lane_u<W>(cur, i);
        const elem_t lo = straddle ? lane_u<W>(held, i) : hi;
        ap_uint<2 * W> pair;
        pair.range(2 * W - 1, W) = hi;
        pair.range(W - 1, 0) = lo;
        const ap_uint<2 * W> shifted = pair >> (off * CFG::OFFSET_STEP);
        return shifted.range(W - 1, 0);
    }

    // Index mask of a codebook entry: its E low bits (E <= CB_BITS).
    static cb_mask_t cb_mask(const ap_uint<8>& ebits) {
#pragma HLS INLINE
        return (cb_mask_t(1) << (ebits < CB ? unsigned(ebits) : CB)) - 1;
    }

    // Dense and N:M weight: sign-extend `bits` bits (the element shifted down by P for N:M).
    static weight_t intb(const elem_t& e, bool nm, const ap_uint<8>& bits) {
#pragma HLS INLINE
        const elem_t v = (HAS_NM && nm) ? elem_t(e >> P) : e;
        return sext_any<CFG::WBITS, W, CFG::WIDTH_MASK, SEXT_TOP>::apply(v, bits);
    }

    // A ternary lane's element for this iteration: the one read now at phase 0, else the one
    // kept from then (`kept` is updated either way, so it always holds the current element).
    static elem_t ternary_element(const elem_t& e, bool ternary, const phase_t& phase,
                                  trits_t& kept) {
#pragma HLS INLINE
        if (!(HAS_TERNARY && ternary)) return e;
        const trits_t v = phase == 0 ? trits_t(e) : kept;
        kept = v;
        return elem_t(v);
    }

    // Ternary weight: trit `phase` of the element, minus one.
    static weight_t trit(const elem_t& e, const phase_t& phase) {
#pragma HLS INLINE
        const trits_t v = trits_t(e);  // 0..26: a 5-input function per trit bit
        const ap_uint<2> t = phase == 0 ? ap_uint<2>(v % 3)
                                        : (phase == 1 ? ap_uint<2>(v / 3 % 3) : ap_uint<2>(v / 9));
        return weight_t(ap_int<3>(t) - 1);
    }

    // Codebook weight: int8 lane `elem & mask` of the entry's table word.
    static weight_t codebook(const elem_t& e, const cb_mask_t& mask,
                             const typename CFG::cb_word_t& table) {
#pragma HLS INLINE
        const ap_uint<CB> index = ap_uint<CB>(e.range(CB - 1, 0)) & ap_uint<CB>(mask);
        return weight_t(lane_s<8>(table, index));
    }

    // The operands of lane (s of any PE): its weight and its input. `xw` is the iteration's
    // window (R beats, beat j at [j*SIMD, (j+1)*SIMD)); dense and codebook lanes take lane s of
    // beat `slot` of it (their one beat), N:M lanes input (s/N)*M + position.
    static void operands(const elem_t& e, const ap_uint<8>& codec, const ap_uint<8>& bits,
                         const cb_mask_t& mask, const typename CFG::cb_word_t& table,
                         const phase_t& phase, const ap_int<8> xw[WIN], unsigned slot,
                         unsigned s, weight_t& w, ap_int<8>& x) {
#pragma HLS INLINE
        const bool nm = HAS_NM && codec == CFG::CODEC_NM;
        const bool cb = HAS_CB && codec == CFG::CODEC_CODEBOOK;
        const bool tern = HAS_TERNARY && codec == CFG::CODEC_TERNARY;
        w = cb ? codebook(e, mask, table) : (tern ? trit(e, phase) : intb(e, nm, bits));
        if (nm) {
            const ap_uint<P> pos = e.range(P - 1, 0);
            x = xw[(s / NM_N) * NM_M + pos];
        } else {
            x = xw[slot * CFG::SIMD + s];
        }
    }
};

}  // namespace vitfpga

#endif  // VITFPGA_WDEC_H
