// Matrix-vector unit: one int8 linear layer folded onto PE x SIMD MACs (docs/engine.md).
//
// One pipelined loop iteration consumes one weight ROM word (word nf*SF + sf), so a run of
// `rows` rows takes rows*NF*SF iterations. The input row is read from the stream only during the
// first neuron fold (nf == 0) and replayed from `row_buf` for the other folds: beat r*SF + sf
// arrives exactly when iteration (r, nf=0, sf) needs it, so the next row streams in while it is
// being used and no separate double buffer (nor a stall between rows) is needed.
//
// CFG supplies: K, N, PE, SIMD, SF, NF, WBITS, RELU, WEIGHT_DEPTH, FOLDS (= NF*SF), TRIP_MAX,
// and the types word_t, bias_word_t, mult_word_t, shift_word_t, in_beat_t, out_beat_t.
#ifndef VITFPGA_MVU_H
#define VITFPGA_MVU_H

#include "ap_int.h"
#include "hls_stream.h"
#include "vitfpga/lanes.h"
#include "vitfpga/requant.h"

namespace vitfpga {

template <class CFG>
void mvu(hls::stream<typename CFG::in_beat_t>& in, hls::stream<typename CFG::out_beat_t>& out,
         const typename CFG::word_t weights[CFG::WEIGHT_DEPTH],
         const typename CFG::bias_word_t bias[CFG::NF],
         const typename CFG::mult_word_t mult[CFG::NF],
         const typename CFG::shift_word_t shift[CFG::NF], ap_uint<32> rows,
         ap_uint<32>& iterations) {
#pragma HLS INLINE
    // Whole SIMD slices are read and written in one iteration: lanes must be separate registers.
    ap_int<8> row_buf[CFG::SF][CFG::SIMD];
#pragma HLS ARRAY_PARTITION variable=row_buf complete dim=2
    // row_buf[sf] is written at fold (nf=0, sf) and next read at (nf=1, sf): SF iterations on,
    // so the tool need not assume a distance-1 dependence that would break II=1 when SF > 1.
#pragma HLS DEPENDENCE variable=row_buf inter RAW distance=CFG::SF true
    ap_int<32> acc[CFG::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=1

    const ap_uint<64> total = ap_uint<64>(rows) * CFG::FOLDS;
    ap_uint<32> r = 0;
    unsigned nf = 0;
    unsigned sf = 0;
    unsigned widx = 0;  // == nf*SF + sf, kept as a counter so no multiplier is needed
    ap_uint<32> count = 0;

fold_loop:
    for (ap_uint<64> i = 0; i < total; ++i) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=CFG::FOLDS max=CFG::TRIP_MAX
        ap_int<8> x[CFG::SIMD];
#pragma HLS ARRAY_PARTITION variable=x complete dim=1
        if (nf == 0) {
            const typename CFG::in_beat_t beat = in.read();  // keep/strb/last are ignored
        load_lanes:
            for (unsigned s = 0; s < CFG::SIMD; ++s) {
#pragma HLS UNROLL
                x[s] = lane_s<8>(beat.data, s);
                row_buf[sf][s] = x[s];
            }
        } else {
        replay_lanes:
            for (unsigned s = 0; s < CFG::SIMD; ++s) {
#pragma HLS UNROLL
                x[s] = row_buf[sf][s];
            }
        }

        // Streaming weight decoder: one ROM word holds all PE x SIMD weights of this iteration.
        const typename CFG::word_t w = weights[widx];
        const bool last_fold = (sf == CFG::SF - 1);
        typename CFG::out_data_t y = 0;

    pe_loop:
        for (unsigned p = 0; p < CFG::PE; ++p) {
#pragma HLS UNROLL
            ap_int<32> dot = 0;
        simd_loop:
            for (unsigned s = 0; s < CFG::SIMD; ++s) {
#pragma HLS UNROLL
                dot += lane_s<CFG::WBITS>(w, p * CFG::SIMD + s) * x[s];
            }
            const ap_int<32> sum = (sf == 0 ? ap_int<32>(0) : acc[p]) + dot;
            acc[p] = sum;
            if (last_fold) {
                const ap_int<32> b = lane_s<32>(bias[nf], p);
                const ap_uint<31> m = lane_u<32>(mult[nf], p);
                const ap_uint<6> sh = lane_u<8>(shift[nf], p);
                set_lane<8>(y, p, requant<CFG::RELU>(sum + b, m, sh));
            }
        }

        if (last_fold) {
            typename CFG::out_beat_t beat;
            beat.data = y;
            beat.keep = -1;
            beat.strb = -1;
            beat.last = (r == rows - 1) && (nf == CFG::NF - 1);
            out.write(beat);
        }

        ++count;
        widx = (widx == CFG::WEIGHT_DEPTH - 1) ? 0u : widx + 1;
        if (++sf == CFG::SF) {
            sf = 0;
            if (++nf == CFG::NF) {
                nf = 0;
                ++r;
            }
        }
    }
    iterations = count;
}

}  // namespace vitfpga

#endif  // VITFPGA_MVU_H
