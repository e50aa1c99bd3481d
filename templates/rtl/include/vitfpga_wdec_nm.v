`timescale 1ns/1ps
// N:M decoder (docs/engine.md, codec 1): an element is position q (P = clog2(M) bits, at least
// one) and the kept value above it. The lane multiplies input q of its group's M window inputs
// (`grp`, the window inputs (s div N)*M .. +M-1 of lane s); the value field goes on to the dense
// decoder's sign extension.
module vitfpga_wdec_nm #(
    parameter integer EW = 4,  // element bits (LANE_BITS)
    parameter integer M = 4
) (
    input  wire [EW-1:0]  elem,
    input  wire [M*8-1:0] grp,
    output wire [EW-1:0]  val,  // elem >> P
    output wire [7:0]     x
);
    localparam integer P = (M > 2) ? $clog2(M) : 1;
    wire [P-1:0] pos = elem[P-1:0];
    assign val = {{P{1'b0}}, elem[EW-1:P]};
    generate
        if ((1 << P) == M) begin : g_pow2
            assign x = grp[pos*8 +: 8];
        end else begin : g_pad
            // A position past M never occurs; pad the multiplexer to 2^P inputs.
            wire [(8 << P)-1:0] g = {{((1 << P) - M)*8{1'b0}}, grp};
            assign x = g[pos*8 +: 8];
        end
    endgenerate
endmodule
