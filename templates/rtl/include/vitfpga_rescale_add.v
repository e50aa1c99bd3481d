`timescale 1ns/1ps
// Residual add of one lane, pipelined for the logic-depth budget:
//
//   y = sat16(round_shift(a, M0, S0) + round_shift(x, M1, S1)),
//   round_shift(v, M, S) = (v * M + 2^(S-1)) >>> S
//
// bit-exact with `vitfpga.runtime.intmath.int_add` (two terms, 16 bits) for a int8, x int16,
// M0, M1 unsigned below 2^31 (bit 31 is not read) and 1 <= S0, S1 <= 62.
//
// Timing: LAT = 5. Every register is clocked by `en`; y shows the result of the inputs sampled
// LAT enabled edges earlier. a, x, m0, m1, s0 and s1 are all sampled on that same edge (m and s
// may change from one beat to the next, though an op holds them constant).
//
// Resources (Yosys synth_xilinx -flatten, the unit alone): 4 DSP48 (one 25 x 18 partial product
// each), about 490 LUTs (the two 40-bit shifters half of them); 15 CARRY4 and 198 flip-flops on
// xc7, 25 CARRY4 and 346 flip-flops on xcup, where Yosys packs no DSP48E2 register.
//
// Rounding without a rounding constant: for S >= 1, floor((P + 2^(S-1)) / 2^S) =
// floor(P / 2^S) + P[S-1] (P[S-1] is the bit just below the cut, two's complement, so the sign
// for S-1 past P's top). One shift of P by S-1 gives both: w = P >>> (S-1), then
// round_shift = (w >>> 1) + w[0]. |a*M0| < 2^38 and |x*M1| < 2^46, so every S0 >= 39 (S1 >= 47)
// rounds to 0, exactly as S0 = 39 (S1 = 47) does: S is clamped there first.
//
// Why the terms are not clamped to 16 bits before the sum: two huge terms of opposite signs can
// cancel (a*M0/2^S0 = 2^37 - 5 and x*M1/2^S1 = 10 - 2^37 sum to 5). The a term is exact
// (|ra| <= 2^37 fits 39 bits); the x term is clamped to 39 bits, which is exact for the sum's
// saturation because past 2^38 it outweighs any a term by more than 2^16.
//
// Pipeline (LUT levels are the `vitfpga.sim.depth` count, budget 12 on xc7, 8 on xcup; every
// stage is kept 2 levels under the xcup budget, 6 at most: in a larger flattened design ABC
// maps the same logic up to two levels deeper):
//   1. DSP: a*M0 = a*M0[23:0] + a*M0[30:24]*2^24, x*M1 likewise: four products, one DSP each.
//   2. The two partial products of each term summed over bits 24.. (15- and 23-bit chains):
//      Pa = a*M0 (39 bits), Px = x*M1 (47 bits).
//   3. Shift: wa = Pa >>> (S0-1), wx = Px >>> (S1-1), 40-bit windows, three 4:1 mux levels;
//      ra = (wa >>> 1) + wa[0] is carried as the pair, so is rx; and whether wx >>> 1 fits
//      39 bits (bits S1+38 .. 46 of Px equal the sign).
//   4. Sum: u = wa >>> 1, v = clamp39(wx >>> 1), total = u + v + wa[0] + wx[0]. The low 16
//      bits come from one chain (carry k in 0..2); of the high part only D = u_hi + v_hi is
//      needed, through its sign (a chain) and the flags D == 0, -1, -2 (tested without
//      carries), all registered.
//   5. Saturate: the total fits int16 iff D + k == 0 with bit 15 clear or D + k == -1 with it
//      set; else the sign of D + k picks the bound.
module vitfpga_rescale_add (
    input  wire               clk,
    input  wire               en,
    input  wire signed [7:0]  a,
    input  wire signed [15:0] x,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire        [31:0] m0,  // M0 < 2^31: bit 31 is not read
    input  wire        [31:0] m1,  // M1 < 2^31: bit 31 is not read
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire        [7:0]  s0,
    input  wire        [7:0]  s1,
    output reg  signed [15:0] y
);
    // The latency in enabled clocks, for the instantiating pipeline (nothing in here reads it).
    /* verilator lint_off UNUSEDPARAM */
    localparam integer LAT = 5;
    /* verilator lint_on UNUSEDPARAM */

    function mux4(input [1:0] sel, input d0, input d1, input d2, input d3);
        case (sel)
            2'd0: mux4 = d0;
            2'd1: mux4 = d1;
            2'd2: mux4 = d2;
            default: mux4 = d3;
        endcase
    endfunction

    // a + b == c (mod 2^24) without a carry chain: with the carries a + b would need to give c,
    // k[i+1] = a&b | (a^b)&~c at bit i, the sum is c iff a ^ b ^ c == k at every bit.
    function eq_sum(input [23:0] ea, input [23:0] eb, input [23:0] ec);
        reg [23:0] k;
        begin
            k = {(ea[22:0] & eb[22:0]) | ((ea[22:0] ^ eb[22:0]) & ~ec[22:0]), 1'b0};
            eq_sum = (ea ^ eb ^ ec) == k;
        end
    endfunction

    // --- stage 1: partial products, one DSP slice each; the shifts clamped -----------------------
    wire signed [24:0] m0l = {1'b0, m0[23:0]};
    wire signed [7:0]  m0h = {1'b0, m0[30:24]};
    wire signed [24:0] m1l = {1'b0, m1[23:0]};
    wire signed [7:0]  m1h = {1'b0, m1[30:24]};
    // Exact widths: |a*M0l| < 2^31, |a*M0h| <= 16256, |x*M1l| < 2^39, |x*M1h| < 2^22.
    wire signed [31:0] pal = a * m0l;
    wire signed [14:0] pah = a * m0h;
    wire signed [39:0] pxl = x * m1l;
    wire signed [22:0] pxh = x * m1h;
    reg  signed [31:0] pal1;
    reg  signed [14:0] pah1;
    reg  signed [39:0] pxl1;
    reg  signed [22:0] pxh1;
    reg         [5:0]  sa1, sx1;  // min(S, 39) - 1 and min(S, 47) - 1: the window shifts
    always @(posedge clk) begin
        if (en) begin
            pal1 <= pal;
            pah1 <= pah;
            pxl1 <= pxl;
            pxh1 <= pxh;
            sa1 <= (s0 > 8'd39) ? 6'd38 : s0[5:0] - 6'd1;
            sx1 <= (s1 > 8'd47) ? 6'd46 : s1[5:0] - 6'd1;
        end
    end

    // --- stage 2: each term's two partial products summed ----------------------------------------
    wire [14:0] pa_hi = {{7{pal1[31]}}, pal1[31:24]} + pah1;
    wire [22:0] px_hi = {{7{pxl1[39]}}, pxl1[39:24]} + pxh1;
    // mx[i - 39]: bit i of Px is above the clamped x term, i >= S1 + 38 (S1 - 1 = sx1).
    wire [6:0] mx;
    genvar i;
    generate
        for (i = 39; i < 46; i = i + 1) begin : g_mx
            localparam [5:0] K = i - 39;
            assign mx[i - 39] = sx1 <= K;
        end
    endgenerate
    reg [38:0] pa2;
    reg [46:0] px2;
    reg [5:0]  sa2, sx2;
    reg [6:0]  mx2;
    always @(posedge clk) begin
        if (en) begin
            pa2 <= {pa_hi, pal1[23:0]};
            px2 <= {px_hi, pxl1[23:0]};
            sa2 <= sa1;
            sx2 <= sx1;
            mx2 <= mx;
        end
    end

    // --- stage 3: the shifts ---------------------------------------------------------------------
    // 40-bit windows at S-1 of the sign-extended terms, by 16, 4, 1 (one LUT6 each, kept: else
    // ABC9 splits the muxes). The shifts are at most 38 (a) and 46 (x): a step of 48 never
    // comes, so its mux input repeats 32's.
    wire [86:0] pae = {{48{pa2[38]}}, pa2};
    wire [86:0] pxe = {{40{px2[46]}}, px2};
    (* keep *) wire [54:0] wa16, wx16;
    (* keep *) wire [42:0] wa4, wx4;
    (* keep *) wire [39:0] wa, wx;
    generate
        for (i = 0; i < 55; i = i + 1) begin : g_w16
            assign wa16[i] = mux4(sa2[5:4], pae[i], pae[i + 16], pae[i + 32], pae[i + 32]);
            assign wx16[i] = mux4(sx2[5:4], pxe[i], pxe[i + 16], pxe[i + 32], pxe[i + 32]);
        end
        for (i = 0; i < 43; i = i + 1) begin : g_w4
            assign wa4[i] = mux4(sa2[3:2], wa16[i], wa16[i + 4], wa16[i + 8], wa16[i + 12]);
            assign wx4[i] = mux4(sx2[3:2], wx16[i], wx16[i + 4], wx16[i + 8], wx16[i + 12]);
        end
        for (i = 0; i < 40; i = i + 1) begin : g_w1
            assign wa[i] = mux4(sa2[1:0], wa4[i], wa4[i + 1], wa4[i + 2], wa4[i + 3]);
            assign wx[i] = mux4(sx2[1:0], wx4[i], wx4[i + 1], wx4[i + 2], wx4[i + 3]);
        end
    endgenerate
    wire ovfx = |((px2[45:39] ^ {7{px2[46]}}) & mx2);
    reg [39:0] wa3, wx3;
    reg        ovfx3, negx3;
    always @(posedge clk) begin
        if (en) begin
            wa3 <= wa;
            wx3 <= wx;
            ovfx3 <= ovfx;
            negx3 <= px2[46];
        end
    end

    // --- stage 4: the low sum, the high part's flags and sign ------------------------------------
    wire [38:0] u = wa3[39:1];
    wire [38:0] v = ovfx3 ? {negx3, {38{~negx3}}} : wx3[39:1];
    wire [17:0] lo = {2'b00, u[15:0]} + {2'b00, v[15:0]} + {17'd0, wa3[0]} + {17'd0, wx3[0]};
    wire [23:0] uh = {u[38], u[38:16]};
    wire [23:0] vh = {v[38], v[38:16]};
    /* verilator lint_off UNUSEDSIGNAL */
    wire [23:0] d = uh + vh;  // only its sign is read
    /* verilator lint_on UNUSEDSIGNAL */
    reg [17:0] lo4;
    reg        e0_4, e1_4, e2_4, dneg4;
    always @(posedge clk) begin
        if (en) begin
            lo4 <= lo;
            e0_4 <= eq_sum(uh, vh, 24'h000000);
            e1_4 <= eq_sum(uh, vh, 24'hffffff);
            e2_4 <= eq_sum(uh, vh, 24'hfffffe);
            dneg4 <= d[23];
        end
    end

    // --- stage 5: saturate -----------------------------------------------------------------------
    wire [1:0]  k = lo4[17:16];  // 0, 1 or 2
    // h = D + k, the total's bits 16 and up: h == 0, h == -1, h < 0. k = 2 only when both
    // low halves are 0xffff and both round bits 1: then the low 16 bits are 0, so the total is
    // in range iff h == 0, and hm and the sign of an h of 0 are never read.
    wire hz = (k == 2'd0) ? e0_4 : (k == 2'd1) ? e1_4 : e2_4;
    wire hm = (k == 2'd0) ? e1_4 : e2_4;
    wire neg = dneg4 & ~((k != 2'd0) & e1_4);
    wire inr = (hz & ~lo4[15]) | (hm & lo4[15]);
    wire [15:0] y_d = inr ? lo4[15:0] : neg ? 16'h8000 : 16'h7fff;
    always @(posedge clk) begin
        if (en) y <= y_d;
    end
endmodule
