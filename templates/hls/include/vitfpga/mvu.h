// Matrix-vector unit: every int8 linear layer of the model folded onto one PE x SIMD array
// (docs/engine.md). One call runs one layer, chosen by its program entry.
//
// One pipelined loop iteration (nf, sf) gives every lane one element of its weight stream,
// decoded by vitfpga/wdec.h (dense intB of the entry's width, N:M with its positions, a codebook
// index, or a ternary element that serves three iterations), so a run of `rows` rows takes
// rows*NF*SF iterations whatever the codec. Each iteration reads exactly one weight word: the
// word holding the last bit of the elements it takes (word lo + straddle of the layer's stream;
// word lo when a ternary iteration takes none); an element that straddles two words takes its
// first part from the word the previous iteration read (`held`, then always word lo). Every row
// restarts the stream at w_base, offset 0. Words below ROM_DEPTH come from the ROM, the others
// from the RAM a weight load filled (vitfpga/wload.h).
//
// Inputs: the row is read from the stream only during the first output fold (nf == 0) and
// replayed from `row_buf` for the other folds, so the next row streams in while the current one is
// used and no separate double buffer (nor a stall between rows) is needed. A dense or codebook
// iteration of that fold reads one beat (beat sf); an N:M iteration reads its whole window, the R
// = M/N beats sf*R .. sf*R+R-1. Expected II: 1 in a design without N:M layers. With them, Vitis
// HLS schedules the loop statically for its worst iteration, R reads on the one input stream port,
// so expect II = R throughout (every layer of such a design then takes R clocks an iteration;
// `cycles` still counts iterations, not clocks). The Verilog engine keeps one iteration a clock.
//
// SF, NF, the memory bases, the codec, element and weight widths and ReLU are run-time values
// from the program; only the array shape and the decoders' union are compile-time. CFG supplies:
// PE, SIMD, WBITS, NLAYERS, WDEPTH, ROM_DEPTH, RAM_DEPTH, ROM_ALLOC, RAM_ALLOC, CDEPTH, CB_ALLOC,
// ROW_WINDOWS, MINSF, TRIP_MIN/TRIP_MAX/TRIP_AVG (reports only), the decoder constants of
// vitfpga/wdec.h and the types word_t, cb_word_t, bias_word_t, mult_word_t, shift_word_t,
// out_data_t, in_beat_t, out_beat_t, waddr_t, raddr_t, caddr_t, fold_t, program_entry.
#ifndef VITFPGA_MVU_H
#define VITFPGA_MVU_H

#include "ap_int.h"
#include "hls_stream.h"
#include "vitfpga/lanes.h"
#include "vitfpga/requant.h"
#include "vitfpga/wdec.h"

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

// The iteration's input window `xw` (R beats): from the stream during the first output fold
// (stored into the row buffer), from the row buffer after. `row_buf[win][j]` is beat win*R + j
// of the row; a dense or codebook iteration fills only its beat `slot` (sf mod R) of window
// sf div R, an N:M iteration all R beats of window sf.
template <class CFG>
inline void window(hls::stream<typename CFG::in_beat_t>& in,
                   ap_int<8> row_buf[CFG::ROW_WINDOWS][wdec<CFG>::R][CFG::SIMD], bool first,
                   bool nm, const typename CFG::fold_t& win, unsigned slot,
                   ap_int<8> xw[wdec<CFG>::WIN]) {
#pragma HLS INLINE
    typedef wdec<CFG> D;
    if (first) {
        typename CFG::in_data_t beats[D::R];
#pragma HLS ARRAY_PARTITION variable=beats complete dim=1
    read_beats:
        for (unsigned j = 0; j < D::R; ++j) {
#pragma HLS UNROLL
            beats[j] = 0;
            if (j == 0 || nm) beats[j] = in.read().data;  // keep/strb/last are ignored
        }
    store_beats:
        for (unsigned j = 0; j < D::R; ++j) {
#pragma HLS UNROLL
            const bool fresh = nm || j == slot;
            for (unsigned s = 0; s < CFG::SIMD; ++s) {
#pragma HLS UNROLL
                const ap_int<8> v = lane_s<8>(beats[nm ? j : 0u], s);
                xw[j * CFG::SIMD + s] = fresh ? v : ap_int<8>(0);
                if (fresh) row_buf[win][j][s] = v;
            }
        }
    } else {
    replay_beats:
        for (unsigned j = 0; j < D::R; ++j) {
#pragma HLS UNROLL
            for (unsigned s = 0; s < CFG::SIMD; ++s) {
#pragma HLS UNROLL
                xw[j * CFG::SIMD + s] = row_buf[win][j][s];
            }
        }
    }
}

template <class CFG>
void mvu(hls::stream<typename CFG::in_beat_t>& in, hls::stream<typename CFG::out_beat_t>& out,
         const typename CFG::word_t rom[CFG::ROM_ALLOC],
         const typename CFG::word_t ram[CFG::RAM_ALLOC],
         const typename CFG::bias_word_t bias[CFG::CDEPTH],
         const typename CFG::mult_word_t mult[CFG::CDEPTH],
         const typename CFG::shift_word_t shift[CFG::CDEPTH],
         const typename CFG::program_entry program[CFG::NLAYERS],
         const typename CFG::cb_word_t codebook[CFG::CB_ALLOC], ap_uint<32> rows,
         ap_uint<32> layer, ap_uint<32>& iterations) {
#pragma HLS INLINE
    typedef wdec<CFG> D;
    // A layer outside the program runs nothing; entry 0 is read only to keep the index in range.
    const bool known = layer < CFG::NLAYERS;
    const unsigned entry = known ? unsigned(layer) : 0u;
    const typename CFG::program_entry op = program[entry];
    const ap_uint<64> total = known ? ap_uint<64>(ap_uint<64>(rows) * op.nf * op.sf)
                                    : ap_uint<64>(0);
    // Loop bounds, bases and decoder settings, computed once so the loop needs no multiplier.
    const typename CFG::fold_t sf_last = op.sf - 1;
    const typename CFG::fold_t nf_last = op.nf - 1;
    const ap_uint<32> r_last = rows - 1;
    const typename CFG::waddr_t w_first = op.w_base;
    const typename CFG::caddr_t c_first = op.c_base;
    const bool relu = op.relu[0];
    const bool nm = D::HAS_NM && op.codec == CFG::CODEC_NM;
    const bool ternary = D::HAS_TERNARY && op.codec == CFG::CODEC_TERNARY;
    const typename D::step_t e_steps = op.ebits / CFG::OFFSET_STEP;
    const typename D::cb_mask_t mask = D::cb_mask(op.ebits);
    const typename CFG::cb_word_t table = codebook[D::HAS_CB ? entry : 0u];

    // Whole beats are read and written in one iteration: lanes and window beats must be separate
    // registers or memories.
    ap_int<8> row_buf[CFG::ROW_WINDOWS][D::R][CFG::SIMD];
#pragma HLS ARRAY_PARTITION variable=row_buf complete dim=2
#pragma HLS ARRAY_PARTITION variable=row_buf complete dim=3
    ap_int<32> acc[CFG::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=1
    typename D::trits_t kept[CFG::PE * CFG::SIMD];  // ternary elements between their iterations
#pragma HLS ARRAY_PARTITION variable=kept complete dim=1

    ap_uint<32> r = 0;
    typename CFG::fold_t nf = 0;
    typename CFG::fold_t sf = 0;
    typename CFG::waddr_t lo = w_first;  // weight word holding the element's first bit
    typename D::step_t off = 0;  // its offset in that word, in OFFSET_STEP-bit steps
    typename CFG::word_t held = 0;  // the word the previous iteration read
    typename D::phase_t phase = 0;  // it mod 3 for a ternary layer, else 0
    typename CFG::caddr_t caddr = c_first;  // == c_base + nf
    ap_uint<32> count = 0;

fold_loop:
    for (ap_uint<64> i = 0; i < total; ++i) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=CFG::TRIP_MIN max=CFG::TRIP_MAX avg=CFG::TRIP_AVG
        // row_buf[w] is written at (nf=0, sf) and read again no sooner than (nf=1, sf): SF_l
        // iterations later. SF_l is a run-time value, but no layer has fewer folds than MINSF,
        // so MINSF is a distance every layer honours (it is 1, the tool's own worst case, as soon
        // as any layer has a single compute fold).
#pragma HLS DEPENDENCE variable=row_buf inter RAW distance=CFG::MINSF true
        // R is a power of two: the window index and beat slot are a shift and a mask.
        const typename CFG::fold_t win = nm ? sf : typename CFG::fold_t(sf / D::R);
        const unsigned slot = nm ? 0u : unsigned(sf % D::R);
        ap_int<8> xw[D::WIN];
#pragma HLS ARRAY_PARTITION variable=xw complete dim=1
        window<CFG>(in, row_buf, nf == 0, nm, win, slot, xw);

        // Streaming weight decoder: the word with the elements' last bits, and the one before.
        const bool take = phase == 0;  // this iteration takes a new element from the stream
        const bool straddle = off + e_steps > D::STEPS;
        const typename CFG::word_t cur =
            weight_word<CFG>(rom, ram, typename CFG::waddr_t(lo + (take && straddle)));
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
                const unsigned lane = p * CFG::SIMD + s;
                const typename D::elem_t e = D::ternary_element(
                    D::element(cur, held, straddle, off, lane), ternary, phase, kept[lane]);
                typename D::weight_t w;
                ap_int<8> x;
                D::operands(e, op.codec, op.wbits, mask, table, phase, xw, slot, s, w, x);
                dot += w * x;
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
        held = cur;
        const typename D::step_t next = off + e_steps;
        if (sf == sf_last && nf == nf_last) {  // the next row restarts the stream
            lo = w_first;
            off = 0;
            phase = 0;
        } else {
            if (take && next >= D::STEPS) {
                lo = lo + 1;
                off = next - D::STEPS;
            } else if (take) {
                off = next;
            }
            if (ternary) phase = (phase == 2) ? 0 : unsigned(phase) + 1;
        }
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
