`timescale 1ns/1ps
// Balanced combinational adder tree over N signed IW-bit lanes (unsigned with SIGNED = 0),
// OW-bit sum.
//
// Built by recursion on halves, so its depth is ceil(log2 N) adders where a for-loop sum would
// synthesise as an N-deep chain; separate wires per node also keep Verilator from seeing one
// self-referencing vector. The caller sizes OW to hold the full sum (IW + ceil(log2 N)), so no
// partial sum can overflow.
module vitfpga_addtree #(
    parameter integer N  = 8,
    parameter integer IW = 12,
    parameter integer OW = 15,
    parameter integer SIGNED = 1
) (
    input  wire [N*IW-1:0] in,
    output wire [OW-1:0]   sum
);
    generate
        if (N == 1 && OW > IW) begin : g_leaf
            // The lane sign- (or zero-) extended to the OW-bit sum.
            assign sum = {{(OW - IW){(SIGNED != 0) & in[IW-1]}}, in};
        end else if (N == 1) begin : g_same
            assign sum = in[OW-1:0];
        end else begin : g_split
            localparam integer NL = N / 2;
            localparam integer NR = N - NL;
            wire [OW-1:0] sum_l, sum_r;
            vitfpga_addtree #(.N(NL), .IW(IW), .OW(OW), .SIGNED(SIGNED)) u_l (
                .in(in[NL*IW-1:0]), .sum(sum_l));
            vitfpga_addtree #(.N(NR), .IW(IW), .OW(OW), .SIGNED(SIGNED)) u_r (
                .in(in[N*IW-1:NL*IW]), .sum(sum_r));
            assign sum = sum_l + sum_r;
        end
    endgenerate
endmodule

/* verilator lint_off DECLFILENAME */
// The matmul engine's registered adder tree (vitfpga_mvu.v): N signed IW-bit lanes (unsigned
// with SIGNED = 0) summed in stages of up to four inputs (two binary adder levels: ceil(log4 N)
// stages, every partial sum OW bits), or with TERNARY of up to three (one ternary adder,
// vitfpga_add3: ceil(log3 N) stages, each node only as wide as the leaves under it need, about
// 40% fewer LUTs), each stage registered under `en`, at least one, into an OW-bit sum (OW >= IW
// + ceil(log2 N)). A ternary stage whose inputs leave two over passes them on where that adds
// no stage, so that only the last stage may need a binary adder. Either stage fits the
// logic-depth budget; one stage of a deeper tree would not (hls/plan/timing.py).
module vitfpga_addtree_pipe #(
    parameter integer N  = 8,
    parameter integer IW = 10,
    parameter integer OW = 13,
    parameter integer TERNARY = 0,
    parameter integer SIGNED = 1
) (
    input  wire            clk,
    input  wire            en,
    input  wire [N*IW-1:0] in,
    output wire [OW-1:0]   sum
);
    localparam integer R = (TERNARY != 0) ? 3 : 4;  // a stage's inputs a node
    function integer levels(input integer n);  // stages that take n inputs to one
        integer left;
        begin
            levels = 0;
            for (left = n; left > 1; left = (left + R - 1) / R) levels = levels + 1;
        end
    endfunction
    function integer passes(input integer n);  // 1: a ternary stage of n inputs passes two on
        passes = (TERNARY != 0 && n % 3 == 2 && n > 2 &&
                  levels(n / 3 + 2) == levels((n + 2) / 3)) ? 1 : 0;
    endfunction
    function integer outputs(input integer n);  // a stage's outputs from n inputs
        outputs = (passes(n) != 0) ? n / 3 + 2 : (n + R - 1) / R;
    endfunction
    function integer count_at(input integer k);  // inputs to stage k
        integer j;
        begin
            count_at = N;
            for (j = 0; j < k; j = j + 1) count_at = outputs(count_at);
        end
    endfunction
    function integer width_at(input integer k);  // a node's width after stage k
        integer j, leaves;
        begin
            leaves = R;
            for (j = 0; j < k; j = j + 1) leaves = leaves * R;
            width_at = (TERNARY != 0 && IW + $clog2(leaves) < OW) ? IW + $clog2(leaves) : OW;
        end
    endfunction
    localparam integer TS = (N > 1) ? levels(N) : 1;
    genvar k, g;
    generate
        for (k = 0; k < TS; k = k + 1) begin : g_st
            localparam integer NIN = count_at(k);
            localparam integer NOUT = outputs(NIN);
            // Nodes that add; the rest pass an input on.
            localparam integer FULL = (passes(NIN) != 0) ? NIN / 3 : NOUT;
            localparam integer IWS = (k == 0) ? IW : width_at(k - 1);
            localparam integer OWS = (k == TS - 1) ? OW : width_at(k);
            wire [NIN*IWS-1:0] tin;
            reg  [NOUT*OWS-1:0] tout;
            if (k == 0) begin : g_first
                assign tin = in;
            end else begin : g_next
                assign tin = g_st[(k > 0) ? k - 1 : 0].tout;
            end
            for (g = 0; g < NOUT; g = g + 1) begin : g_grp
                // A node's first input and count: R at a time, then the passed ones singly.
                localparam integer BASE = (g < FULL) ? R * g : R * FULL + g - FULL;
                localparam integer GN = (g >= FULL) ? 1 : (NIN - BASE < R) ? NIN - BASE : R;
                wire [GN*IWS-1:0] gin = tin[BASE*IWS +: GN*IWS];
                wire [OWS-1:0] gsum;
                if (TERNARY != 0 && GN == 3) begin : g_three
                    wire [3*OWS-1:0] e;  // the three inputs sign- (or zero-) extended
                    genvar j;
                    for (j = 0; j < 3; j = j + 1) begin : g_ext
                        vitfpga_addtree #(.N(1), .IW(IWS), .OW(OWS), .SIGNED(SIGNED)) u_ext (
                            .in(gin[j*IWS +: IWS]), .sum(e[j*OWS +: OWS]));
                    end
                    vitfpga_add3 #(.W(OWS)) u_add (.a(e[0 +: OWS]), .b(e[OWS +: OWS]),
                                                   .c(e[2*OWS +: OWS]), .s(gsum));
                end else begin : g_bin
                    vitfpga_addtree #(.N(GN), .IW(IWS), .OW(OWS), .SIGNED(SIGNED)) u_tree (
                        .in(gin), .sum(gsum));
                end
                always @(posedge clk) begin
                    if (en) tout[g*OWS +: OWS] <= gsum;
                end
            end
        end
    endgenerate
    assign sum = g_st[TS-1].tout[OW-1:0];
endmodule

// a + b + c in W bits (two's complement; the caller sizes W to hold the sum) as the UltraScale+
// ternary adder: one LUT6_2 a bit and the carry chain, where two chained binary adders take two
// LUTs a bit. A bit's O5 is the majority of its three inputs (the carry-save carry, weight 2);
// O6 is the propagate of adding that carry-save pair, sum bit ^ the previous bit's majority; the
// chain's DI is the previous majority (with propagate 0 both addends equal it). Instantiated,
// because Yosys builds a + b + c as two binary adders: the netlist shows what Vivado builds.
// Simulators take the primitives' models from sim/models/xilinx_prims.v.
module vitfpga_add3 #(
    parameter integer W = 12
) (
    input  wire [W-1:0] a,
    input  wire [W-1:0] b,
    input  wire [W-1:0] c,
    output wire [W-1:0] s
);
    localparam integer NC = (W + 7) / 8;  // CARRY8 cells
    wire [NC*8-1:0] p, di, co, o;
    wire [W:0] m;  // m[i + 1]: bit i's majority
    assign m[0] = 1'b0;
    genvar i;
    generate
        for (i = 0; i < NC * 8; i = i + 1) begin : g_bit
            if (i < W) begin : g_lut
                // INIT: the upper half (I5 = 1) is I0 ^ I1 ^ I2 ^ I3, the lower majority(I0..I2).
                LUT6_2 #(.INIT(64'h69966996_e8e8e8e8)) u_lut (
                    .I0(a[i]), .I1(b[i]), .I2(c[i]), .I3(m[i]), .I4(1'b0), .I5(1'b1),
                    .O6(p[i]), .O5(m[i+1]));
                assign di[i] = m[i];
            end else begin : g_pad
                assign p[i] = 1'b0;
                assign di[i] = 1'b0;
            end
        end
        for (i = 0; i < NC; i = i + 1) begin : g_cy
            CARRY8 #(.CARRY_TYPE("SINGLE_CY8")) u_cy (
                .CI((i == 0) ? 1'b0 : co[8*i-1]), .CI_TOP(1'b0), .DI(di[8*i +: 8]),
                .S(p[8*i +: 8]), .O(o[8*i +: 8]), .CO(co[8*i +: 8]));
        end
    endgenerate
    assign s = o[W-1:0];
    /* verilator lint_off UNUSEDSIGNAL */
    wire unused = &{1'b0, m[W], co[NC*8-1], o};  // the top carries: the caller's W holds the sum
    /* verilator lint_on UNUSEDSIGNAL */
endmodule
