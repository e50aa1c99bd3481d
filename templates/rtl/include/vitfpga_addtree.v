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

/* verilator lint_off DECLFILENAME */
// The matmul engine's registered adder tree (vitfpga_mvu.v): N signed IW-bit lanes summed in
// ceil(log4 N) stages (at least one) of up to four inputs, each registered under `en`, into an
// OW-bit signed sum (OW >= IW + ceil(log2 N)). Two adder levels a stage fit the logic-depth
// budget; one stage of a deeper tree would not (hls/plan/timing.py).
module vitfpga_addtree_pipe #(
    parameter integer N  = 8,
    parameter integer IW = 10,
    parameter integer OW = 13
) (
    input  wire            clk,
    input  wire            en,
    input  wire [N*IW-1:0] in,
    output wire [OW-1:0]   sum
);
    function integer width_at(input integer n, input integer k);  // inputs to stage k
        integer i;
        begin
            width_at = n;
            for (i = 0; i < k; i = i + 1) width_at = (width_at + 3) / 4;
        end
    endfunction
    localparam integer TS = (N > 1) ? ($clog2(N) + 1) / 2 : 1;  // ceil(log4 N), at least 1
    genvar k, g;
    generate
        for (k = 0; k < TS; k = k + 1) begin : g_st
            localparam integer NIN = width_at(N, k);
            localparam integer NOUT = (NIN + 3) / 4;
            localparam integer IWS = (k == 0) ? IW : OW;
            wire [NIN*IWS-1:0] tin;
            reg  [NOUT*OW-1:0] tout;
            if (k == 0) begin : g_first
                assign tin = in;
            end else begin : g_next
                assign tin = g_st[(k > 0) ? k - 1 : 0].tout;
            end
            for (g = 0; g < NOUT; g = g + 1) begin : g_grp
                localparam integer GN = (NIN - 4 * g < 4) ? NIN - 4 * g : 4;
                wire [OW-1:0] gsum;
                vitfpga_addtree #(.N(GN), .IW(IWS), .OW(OW)) u_tree (
                    .in(tin[4*g*IWS +: GN*IWS]), .sum(gsum));
                always @(posedge clk) begin
                    if (en) tout[g*OW +: OW] <= gsum;
                end
            end
        end
    endgenerate
    assign sum = g_st[TS-1].tout[OW-1:0];
endmodule
