`timescale 1ns/1ps
// Requantisation of one engine output channel, pipelined for the logic-depth budget:
//
//   y = clamp((acc * M + 2^(S-1)) >>> S, lo, 127),   lo = relu ? 0 : -128
//
// bit-exact with `vitfpga.runtime.intmath.requantize` for acc int32, M unsigned below 2^31 (the
// model's M is in [2^30, 2^31); mult[31] is not read) and 1 <= S <= 62.
//
// Timing: LAT = 4. Every register is clocked by `en` (the engine stalls its whole pipeline with
// it); y shows the result of the inputs sampled LAT enabled edges earlier. acc, mult, shift and
// relu are all sampled on that same edge and travel with the beat (relu may change per beat).
//
// Resources (Yosys synth_xilinx -flatten, the unit alone): 4 DSP48 (one 25 x 18 partial product
// each), about 290 LUTs, 26 CARRY4 and one SRL16E; 190 flip-flops on xc7, where the DSPs hold
// the product registers, 316 on xcup, where Yosys packs no DSP48E2 register.
//
// Exactness. P = acc*M is formed exactly, then rounded by the floor identity (S >= 1)
//   floor((P + 2^(S-1)) / 2^S) = floor((floor(P / 2^(S-1)) + 1) / 2) = (u + 1) >>> 1,
//   u = P >>> (S-1),
// so no rounding constant is added to a wide value. The result is clamped to 8 bits, so of u
// only its low 9 bits and whether it fits 9 bits matter: if u fits ([-256, 255]), the result
// is (u + 1) >> 1 = u[8:1] + u[0] (u = 255 gives 128, clamped to 127); u >= 256 clamps to 127,
// u <= -257 to -128. u fits 9 bits iff bits S+7 .. 63 of P all equal its sign. With relu a
// negative P gives a result <= 0, clamped to 0.
//
// Pipeline (LUT levels are the `vitfpga.sim.depth` count, budget 12 on xc7, 8 on xcup):
//   1. DSP: acc = AH*2^17 + AL (AL = acc[16:0] unsigned, AH = acc[31:17] signed) and
//      M = MH*2^24 + ML (ML = M[23:0], MH = M[30:24]) give four products, one DSP each:
//      Q0 = AL*ML (weight 1, < 2^41), Q1 = AH*ML (2^17), Q2 = AL*MH (2^24), Q3 = AH*MH (2^41).
//      Q0 < 2^41, so Q0 and Q3 do not overlap: T = {Q3, Q0} is one 64-bit term. (xcup: the
//      DSP and its 3 levels end here.)
//   2. P = T + Q1*2^17 + Q2*2^24 (mod 2^64, exact as |P| < 2^62). Bits 0..16 are T's. Above
//      them one carry-save level (x + y + z = (x ^ y ^ z) + 2*maj(x, y, z)) makes three terms
//      two, and the 47-bit carry-propagate add is split into 16 + 16 + 15 bits, the upper two
//      built for carry-in 0 and 1 (carry select): no chain longer than 5 CARRY4; all five sums
//      are registered. Also the thermometer mask of S that picks bits S+7 .. 62 for the fit
//      test. (xc7: the DSP's product register starts this stage, its 3 levels first: 10.)
//   3. The carries pick P's upper two parts (one level), u by three 4:1 mux levels (shift by
//      16, 4, 1), the fit test by an OR tree to its last node (registered as 5 partial ORs).
//   4. The last OR, round and clamp.
// Every stage is kept 2 levels under the budget (6 at most on xcup, 10 on xc7): in a larger
// flattened design ABC maps the same logic up to two levels deeper.
module vitfpga_requant (
    input  wire               clk,
    input  wire               en,
    input  wire signed [31:0] acc,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire        [31:0] mult,   // M < 2^31: bit 31 is zero and not read
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire        [7:0]  shift,  // S, 1..62
    input  wire               relu,
    output reg         [7:0]  y
);
    // The latency in enabled clocks, for the instantiating pipeline to read (hierarchically or
    // by copying the figure); nothing in here needs it.
    /* verilator lint_off UNUSEDPARAM */
    localparam integer LAT = 4;
    /* verilator lint_on UNUSEDPARAM */

    function mux4(input [1:0] sel, input a, input b, input c, input d);
        case (sel)
            2'd0: mux4 = a;
            2'd1: mux4 = b;
            2'd2: mux4 = c;
            default: mux4 = d;
        endcase
    endfunction

    // --- stage 1: the four partial products, one DSP slice each ----------------------------------
    wire signed [14:0] ah = acc[31:17];
    wire signed [24:0] ml = {1'b0, mult[23:0]};
    wire signed [7:0]  mh = {1'b0, mult[30:24]};
    // Widths hold the exact values: Q0 < 2^41, |Q1| < 2^38, Q2 < 2^24, |Q3| < 2^21.
    wire        [40:0] p0 = acc[16:0] * mult[23:0];
    wire signed [38:0] p1 = ah * ml;
    wire        [23:0] p2 = acc[16:0] * mult[30:24];
    wire signed [21:0] p3 = ah * mh;
    reg         [40:0] q0;
    reg signed  [38:0] q1;
    reg         [23:0] q2;
    reg signed  [21:0] q3;
    reg         [7:0]  s1;
    reg                relu1;
    always @(posedge clk) begin
        if (en) begin
            q0 <= p0;
            q1 <= p1;
            q2 <= p2;
            q3 <= p3;
            s1 <= shift;
            relu1 <= relu;
        end
    end

    // --- stage 2: carry-save, then the split carry-propagate add ---------------------------------
    // Bits 17..63 of the three terms, at weight 2^17.
    wire [46:0] ta = {q3[21], q3, q0[40:17]};
    wire [46:0] tb = {{8{q1[38]}}, q1};
    wire [46:0] tc = {16'd0, q2, 7'd0};
    wire [46:0] sv = ta ^ tb ^ tc;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [46:0] mj = (ta & tb) | (ta & tc) | (tb & tc);  // bit 46's carry leaves the 64 bits
    /* verilator lint_on UNUSEDSIGNAL */
    wire [46:0] cv = {mj[45:0], 1'b0};
    // Three chains of 16, 16 and 15 bits (5 CARRY4 at most, carry out and vehicle bit
    // included); the upper two are built for both carries in (appending a 1 to both operands
    // gives the +1). The carries pick them in stage 3: here the pick made xc7's stage 11 levels.
    wire [16:0] lo_sum = {1'b0, sv[15:0]} + {1'b0, cv[15:0]};
    wire [16:0] md_0 = {1'b0, sv[31:16]} + {1'b0, cv[31:16]};
    wire [14:0] hi_0 = sv[46:32] + cv[46:32];
    /* verilator lint_off UNUSEDSIGNAL */
    wire [17:0] md_1 = {1'b0, sv[31:16], 1'b1} + {1'b0, cv[31:16], 1'b1};  // bit 0: the vehicle
    wire [15:0] hi_1 = {sv[46:32], 1'b1} + {cv[46:32], 1'b1};
    /* verilator lint_on UNUSEDSIGNAL */
    // mask[i - 8]: bit i of P is above u's 9-bit range, i >= S + 7 (i <= 62; 63 is the sign).
    wire [54:0] mask;
    genvar i;
    generate
        for (i = 8; i < 63; i = i + 1) begin : g_mask
            localparam [7:0] K = i - 7;
            assign mask[i - 8] = s1 <= K;
        end
    endgenerate
    reg [16:0] pl2, lo2, md0_2, md1_2;
    reg [14:0] hi0_2, hi1_2;
    reg [54:0] mask2;
    reg [5:0]  sm2;  // S - 1
    reg        relu2;
    always @(posedge clk) begin
        if (en) begin
            pl2 <= q0[16:0];
            lo2 <= lo_sum;
            md0_2 <= md_0;
            md1_2 <= md_1[17:1];
            hi0_2 <= hi_0;
            hi1_2 <= hi_1[15:1];
            mask2 <= mask;
            sm2 <= s1[5:0] - 6'd1;
            relu2 <= relu1;
        end
    end

    // --- stage 3: carry select, shift, fit test -------------------------------------------------
    wire        c_md = lo2[16] ? md1_2[16] : md0_2[16];
    wire [63:0] p = {c_md ? hi1_2 : hi0_2, lo2[16] ? md1_2[15:0] : md0_2[15:0], lo2[15:0], pl2};
    wire        sign = p[63];
    wire [71:0] pe = {{8{sign}}, p};
    // u = P >>> (S-1), when it fits 9 bits: three 4:1 mux stages by 16, 4, 1, each net kept so
    // that every stage stays one LUT6 (left to itself ABC9 splits some muxes in two levels).
    (* keep *) wire [23:0] w16;
    (* keep *) wire [11:0] w4;
    (* keep *) wire [8:0]  u;
    generate
        for (i = 0; i < 24; i = i + 1) begin : g_w16
            assign w16[i] = mux4(sm2[5:4], pe[i], pe[i + 16], pe[i + 32], pe[i + 48]);
        end
        for (i = 0; i < 12; i = i + 1) begin : g_w4
            assign w4[i] = mux4(sm2[3:2], w16[i], w16[i + 4], w16[i + 8], w16[i + 12]);
        end
        for (i = 0; i < 9; i = i + 1) begin : g_u
            assign u[i] = mux4(sm2[1:0], w4[i], w4[i + 1], w4[i + 2], w4[i + 3]);
        end
    endgenerate
    // ovf: a bit of P at or above S + 7 differs from the sign (u does not fit 9 bits). An OR
    // tree of 2, 6 and 5 inputs, each node one LUT (kept, else ABC9 builds a chain of them).
    wire [55:0] dif = {1'b0, (p[62:8] ^ {55{sign}}) & mask2};
    (* keep *) wire [27:0] ov1;
    (* keep *) wire [4:0]  ov2;
    generate
        for (i = 0; i < 28; i = i + 1) begin : g_ov1
            assign ov1[i] = dif[2*i] | dif[2*i + 1];
        end
        for (i = 0; i < 5; i = i + 1) begin : g_ov2
            assign ov2[i] = |ov1[6*i +: ((i < 4) ? 6 : 4)];
        end
    endgenerate
    // The OR tree's last node waits for stage 4, which has the slack.
    reg [8:0]  u3;
    reg [4:0]  ov3;
    reg        sign3, relu3;
    always @(posedge clk) begin
        if (en) begin
            u3 <= u;
            ov3 <= ov2;
            sign3 <= sign;
            relu3 <= relu2;
        end
    end

    // --- stage 4: round, clamp -------------------------------------------------------------------
    // (u + 1) >> 1 = u[8:1] + u[0] for u in [-256, 254]; u = 255 rounds to 128 and clamps.
    wire [7:0]  r = u3[8:1] + {7'd0, u3[0]};
    wire        top = u3 == 9'h0ff;
    wire [7:0]  y_d = (sign3 && relu3) ? 8'h00 : (|ov3 || top) ? (sign3 ? 8'h80 : 8'h7f) : r;
    always @(posedge clk) begin
        if (en) y <= y_d;
    end
endmodule
