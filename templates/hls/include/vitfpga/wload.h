// Weight load (docs/engine.md): the host streams the RAM part of the weights in once after
// configuration, because UltraScale+ URAM cannot be initialised from the bitstream.
//
// A weight word is WORD_BITS = PE*SIMD*LANE_BITS bits (every lane's slice of the encoded weight
// streams; docs/engine.md). A load of `rows` words reads rows*BPW input beats; beat j of word i
// carries the word's bits [j*SIMD*8 +: SIMD*8] (bits at or past WORD_BITS in the last beat are
// ignored) and word i goes to RAM word i (weight word ROM_DEPTH + i). Words past RAM_DEPTH are
// read and dropped, so a host that sends too many cannot wrap the RAM address round onto word 0.
// A load writes no output beats.
//
// `iterations` counts pipelined loop iterations, one per input beat (rows*BPW): at II=1 that is
// the clock count without stalls, exactly as `cycles` is for a layer run.
//
// CFG supplies: SIMD, BPW, RAM_DEPTH, RAM_ALLOC, LOAD_BITS, LOAD_TRIP (reports only) and the types
// word_t, in_beat_t, raddr_t, beat_t, load_t.
#ifndef VITFPGA_WLOAD_H
#define VITFPGA_WLOAD_H

#include "ap_int.h"
#include "hls_stream.h"

namespace vitfpga {

// `buf` with `beat` shifted in at the top and everything else down by one beat: after BPW beats,
// beat j sits at bits [j*IN, (j+1)*IN), with no run-time bit index (no wide multiplexer). A class
// template because a one-beat word (ALL == IN) keeps no older beats, and the general case's
// slices would then be empty, which ap_int does not allow even in dead code.
template <int IN, int ALL>
struct shift_in {
    static ap_uint<ALL> apply(const ap_uint<ALL>& buf, const ap_uint<IN>& beat) {
#pragma HLS INLINE
        ap_uint<ALL> next;
        next.range(ALL - IN - 1, 0) = buf.range(ALL - 1, IN);
        next.range(ALL - 1, ALL - IN) = beat;
        return next;
    }
};

template <int IN>
struct shift_in<IN, IN> {
    static ap_uint<IN> apply(const ap_uint<IN>&, const ap_uint<IN>& beat) {
#pragma HLS INLINE
        return beat;
    }
};

// A weight load into `ram` (RAM_DEPTH > 0).
template <class CFG>
void load_weights(hls::stream<typename CFG::in_beat_t>& in,
                  typename CFG::word_t ram[CFG::RAM_ALLOC], ap_uint<32> rows,
                  ap_uint<32>& iterations) {
#pragma HLS INLINE
    const ap_uint<64> total = ap_uint<64>(rows) * CFG::BPW;
    typename CFG::load_t buf = 0;
    typename CFG::beat_t beat_no = 0;  // beat of the current word, 0..BPW-1
    ap_uint<32> word = 0;  // RAM word being assembled
    ap_uint<32> count = 0;

load_loop:
    for (ap_uint<64> i = 0; i < total; ++i) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=CFG::LOAD_TRIP max=CFG::LOAD_TRIP avg=CFG::LOAD_TRIP
        const typename CFG::in_beat_t beat = in.read();  // keep/strb/last are ignored
        buf = shift_in<CFG::SIMD * 8, CFG::LOAD_BITS>::apply(buf, beat.data);
        if (beat_no == CFG::BPW - 1) {
            // The word is the low WORD_BITS of its beats; the last beat's excess is dropped here.
            if (word < CFG::RAM_DEPTH) {
                ram[typename CFG::raddr_t(word)] = typename CFG::word_t(buf);
            }
            ++word;
            beat_no = 0;
        } else {
            ++beat_no;
        }
        ++count;
    }
    iterations = count;
}

// A weight load on a design without a RAM part (RAM_DEPTH == 0): the beats are read and dropped,
// so a host that loads anyway neither hangs nor leaves beats in the stream for the next run.
template <class CFG>
void skip_weights(hls::stream<typename CFG::in_beat_t>& in, ap_uint<32> rows,
                  ap_uint<32>& iterations) {
#pragma HLS INLINE
    const ap_uint<64> total = ap_uint<64>(rows) * CFG::BPW;
    ap_uint<32> count = 0;

skip_loop:
    for (ap_uint<64> i = 0; i < total; ++i) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=CFG::LOAD_TRIP max=CFG::LOAD_TRIP avg=CFG::LOAD_TRIP
        in.read();
        ++count;
    }
    iterations = count;
}

}  // namespace vitfpga

#endif  // VITFPGA_WLOAD_H
