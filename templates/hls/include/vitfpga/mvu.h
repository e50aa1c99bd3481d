// Matrix-vector unit: every int8 linear layer of the model folded onto one PE x SIMD array
// (docs/engine.md). One call runs one layer, chosen by its program entry.
//
// One pipelined loop iteration consumes one weight word (word w_base + nf*SF + sf of the layer),
// so a run of `rows` rows takes rows*NF*SF iterations. Words below ROM_DEPTH come from the ROM,
// the others from the RAM a weight load filled (vitfpga/wload.h). The input row is read from the
// stream only during the first output fold (nf == 0) and replayed from `row_buf` for the other
// folds: beat r*SF + sf arrives exactly when iteration (r, nf=0, sf) needs it, so the next row
// streams in while it is being used and no separate double buffer (nor a stall between rows) is
// needed.
//
// SF, NF, the memory bases and ReLU are run-time values from the program; only the array shape is
// compile-time. CFG supplies: PE, SIMD, WBITS, NLAYERS, WDEPTH, ROM_DEPTH, RAM_DEPTH, ROM_ALLOC,
// RAM_ALLOC, CDEPTH, MAXSF, MINSF, TRIP_MIN/TRIP_MAX/TRIP_AVG (reports only) and the types
// word_t, bias_word_t, mult_word_t, shift_word_t, out_data_t, in_beat_t, out_beat_t, waddr_t,
// raddr_t, caddr_t, fold_t, program_entry.
#ifndef VITFPGA_MVU_H
#define VITFPGA_MVU_H

#include "ap_int.h"
#include "hls_stream.h"
#include "vitfpga/lanes.h"
#include "vitfpga/requant.h"

namespace vitfpga {

// Weight word `waddr`: ROM word `waddr` below ROM_DEPTH, else RAM word `waddr - ROM_DEPTH`.
// Only one of the two memories is read per iteration, each through its one read port, so II=1
// holds. When a part is empty the condition is a compile-time constant: the select vanishes, and
// so does the empty part's operand (the top passes the other array there; it is never read).
template <class CFG>
inline typename CFG::word_t weight_word(const typename CFG::word_t rom[CFG::ROM_ALLOC],
                                        const typename CFG::word_t ram[CFG::RAM_ALLOC],
                                        const typename CFG::waddr_t& waddr) {
#pragma HLS INLINE
    const bool in_rom =
        CFG::RAM_DEPTH == 0 || (CFG::ROM_DEPTH > 0 && waddr < CFG::ROM_DEPTH);
    return in_rom ? rom[waddr] : ram[typename CFG::raddr_t(waddr - CFG::ROM_DEPTH)];
}

template <class CFG>
void mvu(hls::stream<typename CFG::in_beat_t>& in, hls::stream<typename CFG::out_beat_t>& out,
         const typename CFG::word_t rom[CFG::ROM_ALLOC],
         const typename CFG::word_t ram[CFG::RAM_ALLOC],
         const typename CFG::bias_word_t bias[CFG::CDEPTH],
         const typename CFG::mult_word_t mult[CFG::CDEPTH],
         const typename CFG::shift_word_t shift[CFG::CDEPTH],
         const typename CFG::program_entry program[CFG::NLAYERS], ap_uint<32> rows,
         ap_uint<32> layer, ap_uint<32>& iterations) {
#pragma HLS INLINE
    // A layer outside the program runs nothing; entry 0 is read only to keep the index in range.
    const bool known = layer < CFG::NLAYERS;
    const typename CFG::program_entry op = program[known ? unsigned(layer) : 0u];
    const ap_uint<64> total = known ? ap_uint<64>(ap_uint<64>(rows) * op.nf * op.sf)
                                    : ap_uint<64>(0);
    // Loop bounds and weight address ranges, computed once so the loop itself needs no multiplier.
    const typename CFG::fold_t sf_last = op.sf - 1;
    const typename CFG::fold_t nf_last = op.nf - 1;
    const ap_uint<32> r_last = rows - 1;
    const typename CFG::waddr_t w_first = op.w_base;
    const typename CFG::waddr_t w_last = op.w_base + op.nf * op.sf - 1;
    const typename CFG::caddr_t c_first = op.c_base;
    const bool relu = op.relu != 0;

    // Whole SIMD slices are read and written in one iteration: lanes must be separate registers.
    ap_int<8> row_buf[CFG::MAXSF][CFG::SIMD];
#pragma HLS ARRAY_PARTITION variable=row_buf complete dim=2
    ap_int<32> acc[CFG::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=1

    ap_uint<32> r = 0;
    typename CFG::fold_t nf = 0;
    typename CFG::fold_t sf = 0;
    typename CFG::waddr_t waddr = w_first;  // == w_base + nf*SF + sf, kept as a counter
    typename CFG::caddr_t caddr = c_first;  // == c_base + nf
    ap_uint<32> count = 0;

fold_loop:
    for (ap_uint<64> i = 0; i < total; ++i) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=CFG::TRIP_MIN max=CFG::TRIP_MAX avg=CFG::TRIP_AVG
        // row_buf[sf] is written at (nf=0, sf) and read again no sooner than (nf=1, sf): SF_l
        // iterations later. SF_l is a run-time value, but no layer has fewer folds than MINSF,
        // so MINSF is a distance every layer honours (it is 1, the tool's own worst case, as soon
        // as any layer has K <= SIMD).
#pragma HLS DEPENDENCE variable=row_buf inter RAW distance=CFG::MINSF true
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

        // Streaming weight decoder: one weight word holds all PE x SIMD weights of this iteration.
        const typename CFG::word_t w = weight_word<CFG>(rom, ram, waddr);
        const typename CFG::bias_word_t b = bias[caddr];
        const typename CFG::mult_word_t m = mult[caddr];
        const typename CFG::shift_word_t sh = shift[caddr];
        const bool last_fold = (sf == sf_last);
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
                const ap_uint<31> mp = lane_u<32>(m, p);
                const ap_uint<6> sp = lane_u<8>(sh, p);
                set_lane<8>(y, p, requant(sum + lane_s<32>(b, p), mp, sp, relu));
            }
        }

        if (last_fold) {
            typename CFG::out_beat_t beat;
            beat.data = y;
            beat.keep = -1;
            beat.strb = -1;
            beat.last = (r == r_last) && (nf == nf_last);
            out.write(beat);
        }

        ++count;
        waddr = (waddr == w_last) ? w_first : typename CFG::waddr_t(waddr + 1);
        if (sf == sf_last) {
            sf = 0;
            if (nf == nf_last) {
                nf = 0;
                caddr = c_first;
                ++r;
            } else {
                ++nf;
                ++caddr;
            }
        } else {
            ++sf;
        }
    }
    iterations = count;
}

}  // namespace vitfpga

#endif  // VITFPGA_MVU_H
