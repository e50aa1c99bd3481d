`timescale 1ns/1ps
// Lane element selector of the weight decoders (docs/engine.md, "Weight streams and decoders").
//
// A lane's elements form one bit stream across consecutive weight words. The element at lane
// offset `off` (in OFFSET_STEP units) is bits [off*STEP +: L] of {cur, low}: `low` is the word of
// the previous element when the element straddles into `cur` (strad), else `cur` itself. Only
// L/STEP offsets exist, so the shifter is an L/STEP-way multiplexer per bit. The result carries
// the element in its low bits; the bits above the element's E bits belong to the next element
// and each codec decoder reads only the bits it needs.
module vitfpga_wdec_sel #(
    parameter integer L = 4,         // LANE_BITS
    parameter integer STEP = 4,      // OFFSET_STEP (divides L)
    parameter integer STRADDLE = 0,  // some element may span two words
    parameter integer SW = 4,        // SHIFT_BITS: the widest element narrower than L
    parameter integer OB = 1         // width of `off`
) (
    input  wire [L-1:0]  cur,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [L-1:0]  held,   // read only with STRADDLE
    input  wire [OB-1:0] off,    // read only when L/STEP > 1
    input  wire          strad,  // read only with STRADDLE
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [L-1:0]  elem
);
    localparam integer NPOS = L / STEP;
    localparam integer NOPT = 1 << OB;  // the multiplexer's inputs: NPOS, padded
    generate
        if (NPOS == 1) begin : g_plain
            // One element width throughout: an element is the whole lane.
            assign elem = cur;
        end else begin : g_shift
            /* verilator lint_off UNUSEDSIGNAL */
            wire [2*L-1:0] pair;  // its top bits start no element
            /* verilator lint_on UNUSEDSIGNAL */
            if (STRADDLE != 0) begin : g_two
                assign pair = {cur, strad ? held : cur};
            end else begin : g_one
                assign pair = {cur, cur};
            end
            // Candidate k is the element starting at bit k*STEP; unused codes repeat candidate 0.
            // Only the low SW bits move: an element as wide as the lane always starts at bit 0
            // (off = 0), so bits at and above SW are those of `cur` in place.
            wire [NOPT*SW-1:0] opts;
            genvar k;
            for (k = 0; k < NOPT; k = k + 1) begin : g_opt
                if (k < NPOS) begin : g_pos
                    assign opts[k*SW +: SW] = pair[k*STEP +: SW];
                end else begin : g_pad
                    assign opts[k*SW +: SW] = pair[SW-1:0];
                end
            end
            if (SW < L) begin : g_part
                assign elem = {cur[L-1:SW], opts[off*SW +: SW]};
            end else begin : g_all
                assign elem = opts[off*SW +: SW];
            end
        end
    endgenerate
endmodule
