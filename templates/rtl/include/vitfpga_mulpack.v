`timescale 1ns/1ps
// Packed multipliers: several exact integer products from one multiplier (one DSP slice), after
// Xilinx WP486 (INT8) and WP487 (INT4). Self-contained (vitfpga_dot2x8's lane sum is its own
// pipelined tree, vitfpga_mulpack_sum).
//
// vitfpga_dot2x8 #(N, SHIFT, LATENCY): two int8 dot products over N terms sharing the operand b,
//   s0 = sum_i a0[i]*b[i],  s1 = sum_i a1[i]*b[i]   (exact, sign-extended to 32 bits)
// from N multiplies of the packed operand A_i = a1[i]*2^SHIFT + a0[i] by b[i]:
//   P = sum_i A_i*b[i] + K = s1*2^SHIFT + (s0 + K),   K a constant (the DSP's C input).
// Exactness: every a*b of int8 lies in [-16256, 16384], so s0 lies in [-16256N, 16384N]. With
// 16256N <= K <= 2^SHIFT - 1 - 16384N, the low field L = s0 + K lies in [0, 2^SHIFT), so P's
// bits [SHIFT-1:0] are L exactly (s0 = L - K) and P >>> SHIFT is s1 exactly, no borrow to
// correct. Such a K exists iff 32640N < 2^SHIFT: N <= 8 at SHIFT 18, N <= 2 at SHIFT 16. K is
// 2^(SHIFT-1) when 16384N < 2^(SHIFT-1) (then L - K only flips bit SHIFT-1), else 16256N.
// Widths: A_i is SHIFT+9 bits signed (a1*2^SHIFT + a0 reaches -2^(SHIFT+7) - 128), so
//   SHIFT = 18: A is 27 bits, b 8 of 18: one DSP48E2 (27x18) per term (UltraScale+, "xcup");
//   SHIFT = 16: A is 25 bits: one DSP48E1 (25x18) per term (7 series, "xc7"), N <= 2;
//   SHIFT = 17: A is 26 bits (DSP48E2), N <= 4;
//   SHIFT = 0: the fallback, two plain products per term and two lane sums.
// s0 and s1 each need 16 + ceil(log2 N) bits; P needs SHIFT + 16 + ceil(log2 N).
// The same bound holds for terms accumulated over time (WP486 accumulates in the DSP's 48-bit P):
// unpack after at most N packed products, whichever way they are summed.
//
// vitfpga_mul2x8 #(SHIFT, LATENCY): vitfpga_dot2x8 with N = 1, p0 = a0*b, p1 = a1*b (int16).
//   SHIFT 18: K = 2^17 and p0 = P[15:0], p1 = P[33:18], no correction logic at all;
//   SHIFT 16: K = 2^15 and p0 = P[15:0] with bit 15 flipped, p1 = P[31:16].
//
// vitfpga_mul3x4 #(WBITS, LATENCY): three WBITS-bit signed weights (1 <= WBITS <= 4) times one
// int8 x, p_i = w_i*x exact (WBITS+8 bits), from one (2F+WBITS+1) x 8 multiply, F = WBITS+7:
//   A = w0 + w1*2^F + w2*2^(2F),  P = A*x + K0*(1 + 2^F),  K0 = 127*2^(WBITS-1).
// Exactness: w*x lies in [-127*2^(WBITS-1), 128*2^(WBITS-1)], so w*x + K0 lies in [0, 2^F): the
// fields P[F-1:0] and P[2F-1:F] are p0 + K0 and p1 + K0, and P >>> 2F is p2 with no borrow.
// At WBITS 4, A is 27 bits: one DSP48E2 (at WBITS <= 3, 24 bits: one DSP48E1). A fourth field
// on A would need 3F+WBITS+1 = 38 bits. Four products as an outer product (two weights times two
// inputs, every product useful in a matrix product over two tokens) need fields at 0, F, 2F, 3F:
// A = w0 + w1*2^(2F) (27 bits) with B = x0 + x1*2^F (20 bits, B has 18), or the operands
// swapped (A 31 bits): three is the most an exact DSP48E2 packing gives at 4 bits.
//
// Pipeline (all three): LATENCY 1..4 register stages, as a DSP48 places them: 1 = P only;
// 2 = inputs + P; 3 = inputs + M (product) + P; 4 = inputs + AD (packed operand) + M + P.
// out = f(in) LATENCY cycles later for vitfpga_mul2x8 and vitfpga_mul3x4, and
// LATENCY + ceil(log2 N) cycles later for vitfpga_dot2x8, counting only cycles with ce high;
// in_valid travels with the data (cleared by rst_n, synchronous, active low; the datapath has no
// reset, as in a DSP). The lane sum of vitfpga_dot2x8 sits between M and P, one register per
// tree level (as a DSP cascade registers each PCIN add), then P = sum + K: one add a clock.
// Logic depth (vitfpga.sim.depth, LATENCY 3): dot2x8 N 2 SHIFT 16 on xc7 8 levels (the sum's
// register is the second DSP48E1's P, then K: 1 LUT + 7 CARRY4); N 8 SHIFT 18 on xcup 6 (a
// pre-adder into the DSP48E2, or one tree level: 1 LUT + 5 CARRY8). With LATENCY < 3 the
// pre-adder, the multiply and the first add share a clock.
//
// Yosys 0.70 synth_xilinx packs registers, pre-adder and post-adder into DSP48E1 only: on xcup
// the DSP48E2 holds the multiplier alone and the pre-adder (an 8-bit decrement of the upper
// operand by the lower one's sign), the constant K, the lane sum and every register are fabric.
// Vivado absorbs the pre-adder (A+D), K (C input) and the registers into the DSP48E2.
//
// Resources, Yosys 0.70 synth_xilinx -flatten, LATENCY 3, per instance (16-instance wrappers):
//   vitfpga_mul2x8 SHIFT 18, xcup: 1 DSP48E2, 9 LUT (pre-adder 8, K 1), its registers in FFs;
//   vitfpga_mul2x8 SHIFT 16, xc7:  1 DSP48E1, 1 LUT (bit 15), 8 FF (a1's input register);
//   vitfpga_mul3x4 WBITS 4, xcup:  1 DSP48E2, 28 LUT (decrements, K, the two -K0) for 3 products,
//     where vitfpga_lutmul takes 42 LUT per product; WBITS 3 on xc7: 1 DSP48E1, 12 LUT;
//     WBITS 4 on xc7: 2 DSP48E1 (A is 27 bits).
//   vitfpga_dot2x8 N 8 SHIFT 18, xcup: 8 DSP48E2, 307 LUT, 758 FF (the tree's registers);
//     N 2 SHIFT 16, xc7: 2 DSP48E1 (the lane sum in the second one's P register), 10 CARRY4
//     (K and the unpacking), 53 FF.

// The two helpers below serve the three public modules of this file.
/* verilator lint_off DECLFILENAME */
// A register stage that can be absent: REG = 0 passes d through.
module vitfpga_mulpack_stage #(
    parameter integer W   = 8,
    parameter integer REG = 1
) (
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire         clk,  // unused when REG = 0
    input  wire         ce,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [W-1:0] d,
    output wire [W-1:0] q
);
    generate
        if (REG != 0) begin : g_reg
            reg [W-1:0] r;
            always @(posedge clk) begin
                if (ce) r <= d;
            end
            assign q = r;
        end else begin : g_wire
            assign q = d;
        end
    endgenerate
endmodule

// in_valid delayed by LATENCY ce-qualified cycles, cleared by rst_n.
module vitfpga_mulpack_valid #(
    parameter integer LATENCY = 3
) (
    input  wire clk,
    input  wire rst_n,
    input  wire ce,
    input  wire in_valid,
    output wire out_valid
);
    reg [LATENCY-1:0] v;
    generate
        if (LATENCY > 1) begin : g_chain
            always @(posedge clk) begin
                if (!rst_n) v <= {LATENCY{1'b0}};
                else if (ce) v <= {v[LATENCY-2:0], in_valid};
            end
        end else begin : g_one
            always @(posedge clk) begin
                if (!rst_n) v <= 1'b0;
                else if (ce) v <= in_valid;
            end
        end
    endgenerate
    assign out_valid = v[LATENCY-1];
endmodule

// The lane sum of vitfpga_dot2x8: a balanced tree over N signed IW-bit lanes (sign-extended to
// the OW-bit sum), one register stage per level (ce-qualified), so sum follows in by
// ceil(log2 N) cycles and no clock holds more than one OW-bit add (a DSP cascade's PCIN adds
// are registered the same way). N = 1 passes the lane through. Heap-numbered: node n
// (1 .. NP-1) adds its children 2n and 2n+1; the lanes, padded with zeros to NP = 2^LB, are the
// leaves NP .. 2NP-1; node 0 does not exist.
module vitfpga_mulpack_sum #(
    parameter integer N  = 8,
    parameter integer IW = 16,
    parameter integer OW = 19
) (
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire          clk,  // unused when N = 1
    input  wire          ce,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [N*IW-1:0] in,
    output wire [OW-1:0]   sum
);
    localparam integer LB = (N > 1) ? $clog2(N) : 0;
    localparam integer NP = 1 << LB;
    wire [2*NP*OW-1:OW] nd;
    genvar i;
    generate
        for (i = 0; i < NP; i = i + 1) begin : g_leaf
            if (i < N) begin : g_lane
                wire [IW-1:0] x = in[i*IW +: IW];
                assign nd[(NP+i)*OW +: OW] = {{(OW-IW){x[IW-1]}}, x};
            end else begin : g_pad
                assign nd[(NP+i)*OW +: OW] = {OW{1'b0}};
            end
        end
        for (i = 1; i < NP; i = i + 1) begin : g_node
            reg [OW-1:0] r;
            always @(posedge clk) begin
                if (ce) r <= nd[2*i*OW +: OW] + nd[(2*i+1)*OW +: OW];
            end
            assign nd[i*OW +: OW] = r;
        end
    endgenerate
    assign sum = nd[OW +: OW];
endmodule
/* verilator lint_on DECLFILENAME */

module vitfpga_dot2x8 #(
    parameter integer N       = 8,   // terms summed before unpacking
    parameter integer SHIFT   = 18,  // 18: DSP48E2, 16: DSP48E1, 0: unpacked fallback
    parameter integer LATENCY = 3    // 1..4, see the header
) (
    input  wire           clk,
    input  wire           rst_n,
    input  wire           ce,
    input  wire           in_valid,
    input  wire [N*8-1:0] a0,  // term i at [i*8 +: 8], int8
    input  wire [N*8-1:0] a1,
    input  wire [N*8-1:0] b,   // the shared operand
    output wire           out_valid,
    output wire [31:0]    s0,  // sum_i a0[i]*b[i], sign-extended
    output wire [31:0]    s1   // sum_i a1[i]*b[i], sign-extended
);
    localparam integer LB = (N > 1) ? $clog2(N) : 0;  // lane-sum levels, one register each
    localparam integer SW = 16 + LB;  // one exact sum
    localparam integer IREG = (LATENCY >= 2) ? 1 : 0;
    localparam integer MREG = (LATENCY >= 3) ? 1 : 0;
    localparam integer ADREG = (LATENCY >= 4) ? 1 : 0;
    // Packed widths; at SHIFT 0 they only size unused wires.
    localparam integer SP = (SHIFT > 0) ? SHIFT : 1;
    localparam integer AW = SP + 9;   // packed operand
    localparam integer PW = SP + 16;  // one packed product
    localparam integer TW = SP + SW;  // the packed sum, K included
    localparam integer KV = (16384 * N < (1 << (SP - 1))) ? (1 << (SP - 1)) : 16256 * N;
    // K in the packed sum's width and in the low field's (KV < 2^SP there).
    /* verilator lint_off WIDTHEXPAND */
    /* verilator lint_off WIDTHTRUNC */
    localparam [TW-1:0] K = KV;
    localparam [SP:0] KL = KV;
    /* verilator lint_on WIDTHTRUNC */
    /* verilator lint_on WIDTHEXPAND */

    generate
        if (N < 1 || LATENCY < 1 || LATENCY > 4 || (SHIFT != 0 && (SHIFT < 16 || SHIFT > 18))
            || (SHIFT != 0 && 32640 * N >= (1 << SP))) begin : g_bad_parameters
            vitfpga_mulpack_parameters_out_of_range u_bad ();  // no such module: elaboration fails
        end
    endgenerate

    vitfpga_mulpack_valid #(.LATENCY(LATENCY + LB)) u_valid (
        .clk(clk), .rst_n(rst_n), .ce(ce), .in_valid(in_valid), .out_valid(out_valid));

    // Input registers (DSP A1/D/B1).
    wire [N*8-1:0] a0_i, a1_i, b_i;
    vitfpga_mulpack_stage #(.W(3*N*8), .REG(IREG)) u_in (
        .clk(clk), .ce(ce), .d({a1, a0, b}), .q({a1_i, a0_i, b_i}));

    genvar i;
    generate
        if (SHIFT != 0) begin : g_packed
            wire [N*PW-1:0] m;  // packed products, after the M stage
            for (i = 0; i < N; i = i + 1) begin : g_lane
                wire [7:0] x0 = a0_i[i*8 +: 8];
                wire [7:0] x1 = a1_i[i*8 +: 8];
                wire signed [AW-1:0] a0x = {{(AW-8){x0[7]}}, x0};
                wire signed [AW-1:0] a1x = {{(AW-8){x1[7]}}, x1};
                // The pre-adder: a1*2^SHIFT + a0 (the DSP's A + D).
                wire signed [AW-1:0] pk = (a1x <<< SHIFT) + a0x;
                wire [AW-1:0] pk_q;
                wire [7:0]    b_q;
                vitfpga_mulpack_stage #(.W(AW + 8), .REG(ADREG)) u_ad (
                    .clk(clk), .ce(ce), .d({pk, b_i[i*8 +: 8]}), .q({pk_q, b_q}));
                // One AW x 8 signed multiply; the product fits PW bits (|A*b| < 2^(SHIFT+15)).
                /* verilator lint_off UNUSEDSIGNAL */
                wire signed [AW+7:0] prod = $signed(pk_q) * $signed(b_q);  // top bit: sign copy
                /* verilator lint_on UNUSEDSIGNAL */
                vitfpga_mulpack_stage #(.W(PW), .REG(MREG)) u_m (
                    .clk(clk), .ce(ce), .d(prod[PW-1:0]), .q(m[i*PW +: PW]));
            end
            // Lane sum (the DSP cascade, registered per level), then K and the P register.
            wire [TW-1:0] sum;
            vitfpga_mulpack_sum #(.N(N), .IW(PW), .OW(TW)) u_sum (
                .clk(clk), .ce(ce), .in(m), .sum(sum));
            reg [TW-1:0] p;
            always @(posedge clk) begin
                if (ce) p <= sum + K;
            end
            // Unpack: s0 = L - K with L = p[SHIFT-1:0] in [0, 2^SHIFT); s1 = p >>> SHIFT.
            wire [SP:0] low = {1'b0, p[SP-1:0]} - KL;
            assign s0 = {{(32-SP-1){low[SP]}}, low};
            assign s1 = {{(32-SW){p[TW-1]}}, p[TW-1:SP]};
        end else begin : g_plain
            wire [N*16-1:0] m0, m1;
            for (i = 0; i < N; i = i + 1) begin : g_lane
                wire [7:0] x0_q, x1_q, b_q;
                vitfpga_mulpack_stage #(.W(24), .REG(ADREG)) u_ad (
                    .clk(clk), .ce(ce), .d({a1_i[i*8 +: 8], a0_i[i*8 +: 8], b_i[i*8 +: 8]}),
                    .q({x1_q, x0_q, b_q}));
                wire signed [15:0] prod0 = $signed(x0_q) * $signed(b_q);
                wire signed [15:0] prod1 = $signed(x1_q) * $signed(b_q);
                vitfpga_mulpack_stage #(.W(32), .REG(MREG)) u_m (
                    .clk(clk), .ce(ce), .d({prod1, prod0}), .q({m1[i*16 +: 16], m0[i*16 +: 16]}));
            end
            wire [SW-1:0] sum0, sum1;
            vitfpga_mulpack_sum #(.N(N), .IW(16), .OW(SW)) u_sum0 (
                .clk(clk), .ce(ce), .in(m0), .sum(sum0));
            vitfpga_mulpack_sum #(.N(N), .IW(16), .OW(SW)) u_sum1 (
                .clk(clk), .ce(ce), .in(m1), .sum(sum1));
            reg [SW-1:0] q0, q1;
            always @(posedge clk) begin
                if (ce) begin
                    q0 <= sum0;
                    q1 <= sum1;
                end
            end
            assign s0 = {{(32-SW){q0[SW-1]}}, q0};
            assign s1 = {{(32-SW){q1[SW-1]}}, q1};
        end
    endgenerate
endmodule

module vitfpga_mul2x8 #(
    parameter integer SHIFT   = 18,  // 18: DSP48E2, 16: DSP48E1, 0: two plain products
    parameter integer LATENCY = 3    // 1..4, see the header
) (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        ce,
    input  wire        in_valid,
    input  wire [7:0]  a0,  // int8
    input  wire [7:0]  a1,  // int8
    input  wire [7:0]  b,   // int8, shared
    output wire        out_valid,
    output wire [15:0] p0,  // a0*b
    output wire [15:0] p1   // a1*b
);
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] s0, s1;  // sign extensions of 16-bit products
    /* verilator lint_on UNUSEDSIGNAL */
    vitfpga_dot2x8 #(.N(1), .SHIFT(SHIFT), .LATENCY(LATENCY)) u_dot (
        .clk(clk), .rst_n(rst_n), .ce(ce), .in_valid(in_valid), .a0(a0), .a1(a1), .b(b),
        .out_valid(out_valid), .s0(s0), .s1(s1));
    assign p0 = s0[15:0];
    assign p1 = s1[15:0];
endmodule

module vitfpga_mul3x4 #(
    parameter integer WBITS   = 4,  // 1..4
    parameter integer LATENCY = 3   // 1..4, see the header
) (
    input  wire                   clk,
    input  wire                   rst_n,
    input  wire                   ce,
    input  wire                   in_valid,
    input  wire [3*WBITS-1:0]     w,  // weight i at [i*WBITS +: WBITS], two's complement
    input  wire [7:0]             x,  // int8, shared
    output wire                   out_valid,
    output wire [3*(WBITS+8)-1:0] p   // w_i*x at [i*(WBITS+8) +: WBITS+8], exact
);
    localparam integer F = WBITS + 7;          // field width
    localparam integer OW = WBITS + 8;         // one product
    localparam integer AW = 2 * F + WBITS + 1; // packed operand
    localparam integer PW = 3 * F + 1;         // packed product, K included
    localparam integer K0 = 127 << (WBITS - 1);
    // K0 < 2^F, so K = K0*(1 + 2^F) < 2^(2F) fits PW bits and K0 fits F+1.
    /* verilator lint_off WIDTHEXPAND */
    /* verilator lint_off WIDTHTRUNC */
    localparam [PW-1:0] K = K0 + (K0 << F);
    localparam [F:0] KF = K0;
    /* verilator lint_on WIDTHTRUNC */
    /* verilator lint_on WIDTHEXPAND */
    localparam integer IREG = (LATENCY >= 2) ? 1 : 0;
    localparam integer MREG = (LATENCY >= 3) ? 1 : 0;
    localparam integer ADREG = (LATENCY >= 4) ? 1 : 0;

    generate
        if (WBITS < 1 || WBITS > 4 || LATENCY < 1 || LATENCY > 4) begin : g_bad_parameters
            vitfpga_mulpack_parameters_out_of_range u_bad ();  // no such module: elaboration fails
        end
    endgenerate

    vitfpga_mulpack_valid #(.LATENCY(LATENCY)) u_valid (
        .clk(clk), .rst_n(rst_n), .ce(ce), .in_valid(in_valid), .out_valid(out_valid));

    wire [3*WBITS-1:0] w_i;
    wire [7:0]         x_i;
    vitfpga_mulpack_stage #(.W(3*WBITS + 8), .REG(IREG)) u_in (
        .clk(clk), .ce(ce), .d({w, x}), .q({w_i, x_i}));

    // The packed operand A = w0 + w1*2^F + w2*2^(2F), built field by field: a negative field
    // lends -1 to the one above, so only two (WBITS+1)-bit decrements are real adders
    // (a full-width three-operand sum costs Yosys about twice the LUTs):
    //   A = {t2, t1 mod 2^F, w0 mod 2^F},  t1 = w1 - [w0 < 0],  t2 = w2 - [t1 < 0].
    wire [WBITS-1:0] w0 = w_i[0 +: WBITS];
    wire [WBITS-1:0] w1 = w_i[WBITS +: WBITS];
    wire [WBITS-1:0] w2 = w_i[2*WBITS +: WBITS];
    wire [WBITS:0] t1 = {w1[WBITS-1], w1} - {{WBITS{1'b0}}, w0[WBITS-1]};
    wire [WBITS:0] t2 = {w2[WBITS-1], w2} - {{WBITS{1'b0}}, t1[WBITS]};
    wire [AW-1:0] pk = {t2, {(F-WBITS-1){t1[WBITS]}}, t1, {(F-WBITS){w0[WBITS-1]}}, w0};
    wire [AW-1:0] pk_q;
    wire [7:0]    x_q;
    vitfpga_mulpack_stage #(.W(AW + 8), .REG(ADREG)) u_ad (
        .clk(clk), .ce(ce), .d({pk, x_i}), .q({pk_q, x_q}));
    // |A*x| < 2^(3F): the product fits PW bits.
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [AW+7:0] prod = $signed(pk_q) * $signed(x_q);  // top bit: sign copy
    /* verilator lint_on UNUSEDSIGNAL */
    wire [PW-1:0] m;
    vitfpga_mulpack_stage #(.W(PW), .REG(MREG)) u_m (
        .clk(clk), .ce(ce), .d(prod[PW-1:0]), .q(m));
    reg [PW-1:0] q;
    always @(posedge clk) begin
        if (ce) q <= m + K;
    end
    // Unpack: fields 0 and 1 carry +K0, field 2 is the signed top.
    wire [F:0] f0 = {1'b0, q[F-1:0]} - KF;
    wire [F:0] f1 = {1'b0, q[2*F-1:F]} - KF;
    assign p = {q[PW-1:2*F], f1[OW-1:0], f0[OW-1:0]};
endmodule

// vitfpga_mul2x2 #(OPERAND): two rows' weights times two tokens' inputs, four products from one
// DSP48E2 multiply P = A*B (vitfpga_mvu.v TWO, docs/engine.md "Tokens in pairs"); LATENCY 3
// (operand, M and P registers), out = P[35:0] of the operands three enabled clocks earlier.
//   Weight layers: A = a0' + a1'*2^18 with a' = w + 1 in [0, 2] (w in [-1, 1]), and
//   B = x0' + x1'*2^9 with x' = x + 128 in [0, 255]. Every product a'*x' lies in [0, 510], so
//   the fields P[9i +: 9] are a0'x0', a0'x1', a1'x0', a1'x1' exactly, with no carry between
//   them; the engine undoes the offsets once a row (sum_k a*x = sum_k a'x' - 128 sum_k w -
//   sum_k x': the weights' part in the bias table, the inputs' as the token's input sum).
//   Streamed operands (OPERAND = 1 only): A = a0 + a1*2^18 for int8 a (the pre-adder), B = x0,
//   so P = p0 + p1*2^18 with p = a*x0 in [-16256, 16384]. Then p0 = P[8:0] + 2^9*sext(P[17:9])
//   and p1 = P[26:18] + 2^9*sext(P[35:27]) + P[17]: the same four fields, summed by the same
//   trees, the high ones sign-extended, and the borrow P[17] counted apart.
// OPERAND = 0 (rows that only ever hold weights): A is the two 2-bit fields side by side, no
// pre-adder at all.
module vitfpga_mul2x2 #(
    parameter integer OPERAND = 1
) (
    input  wire        clk,
    input  wire        ce,
    input  wire [7:0]  a0,  // w + 1, or an int8 operand (OPERAND = 1)
    input  wire [7:0]  a1,
    input  wire [17:0] b,   // the packed input operand (above), shared by a lane's rows
    output wire [35:0] p
);
    /* verilator lint_off UNUSEDSIGNAL */
    reg [7:0]  a0_q, a1_q;  // bits 7:2 read only with OPERAND
    /* verilator lint_on UNUSEDSIGNAL */
    reg [17:0] b_q;
    reg [35:0] m_q, p_q;
    wire signed [26:0] ax;
    generate
        if (OPERAND != 0) begin : g_pre
            // The pre-adder: a1*2^18 + a0 (the DSP's A + D).
            wire signed [26:0] a0x = {{19{a0_q[7]}}, a0_q};
            wire signed [26:0] a1x = {{19{a1_q[7]}}, a1_q};
            assign ax = (a1x <<< 18) + a0x;
        end else begin : g_cat
            assign ax = {7'd0, a1_q[1:0], 16'd0, a0_q[1:0]};
        end
    endgenerate
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [44:0] m = ax * $signed(b_q);  // |P| < 2^36: the top bits copy the sign
    /* verilator lint_on UNUSEDSIGNAL */
    always @(posedge clk) begin
        if (ce) begin
            a0_q <= a0;
            a1_q <= a1;
            b_q <= b;
            m_q <= m[35:0];
            p_q <= m_q;
        end
    end
    assign p = p_q;
endmodule
