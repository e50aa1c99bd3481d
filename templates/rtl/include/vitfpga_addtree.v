`timescale 1ns/1ps
// Balanced combinational adder tree over N signed IW-bit lanes, OW-bit signed sum.
//
// Built by recursion on halves, so its depth is ceil(log2 N) adders where a for-loop sum would
// synthesise as an N-deep chain; separate wires per node also keep Verilator from seeing one
// self-referencing vector. The caller sizes OW to hold the full sum (IW + ceil(log2 N)), so no
// partial sum can overflow.
module vitfpga_addtree #(
    parameter integer N  = 8,
    parameter integer IW = 12,
    parameter integer OW = 15
) (
    input  wire [N*IW-1:0] in,
    output wire [OW-1:0]   sum
);
    generate
        if (N == 1) begin : g_leaf
            // A signed right-hand side is sign-extended to the OW-bit sum.
            wire signed [IW-1:0] lane = in;
            /* verilator lint_off WIDTHEXPAND */
            assign sum = lane;
            /* verilator lint_on WIDTHEXPAND */
        end else begin : g_split
            localparam integer NL = N / 2;
            localparam integer NR = N - NL;
            wire [OW-1:0] sum_l, sum_r;
            vitfpga_addtree #(.N(NL), .IW(IW), .OW(OW)) u_l (.in(in[NL*IW-1:0]), .sum(sum_l));
            vitfpga_addtree #(.N(NR), .IW(IW), .OW(OW)) u_r (.in(in[N*IW-1:NL*IW]), .sum(sum_r));
            assign sum = sum_l + sum_r;
        end
    endgenerate
endmodule
