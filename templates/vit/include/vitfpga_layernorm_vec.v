`timescale 1ns/1ps
// Vector integer LayerNorm: L int16 elements in and L int8 out a clock, bit-exact with
// vitfpga.runtime.intmath.int_layernorm on every row (L = 1 is the one-element-a-clock unit).
//
// Per row x[0..D-1] (int16), with gamma/beta elements pbase+i and (M, S, eps):
//   S  = sum x,  Q = sum x^2;   v = D*(D*Q - S^2) + eps   (= sum xc^2 + eps, xc = D*x - S)
//   k  = largest k <= 31 with v*4^k < 2^62;   r = max(isqrt(v << 2k), 1)
//   n  = floor(xc * 2^(15+k) / r)   (16-step restoring divider on a = |xc| << k <= r)
//   y  = clamp((acc*M + 2^(S-1)) >>> S, -128, 127),   acc = n*gamma + beta
//
// Why 16 quotient bits suffice (the divider's bound). Let a = |xc| * 2^k. Since eps >= 0,
// xc^2 <= sum xc^2 <= v, so a <= sqrt(v) * 2^k = sqrt(v * 4^k). a is an integer, hence
// a <= floor(sqrt(v << 2k)) = isqrt(v << 2k) <= r (and a = 0 <= r = 1 when v = 0, where every xc
// is 0). So |xc * 2^(15+k)| = a * 2^15 <= r * 2^15, the magnitude quotient q = floor(a*2^15/r)
// is at most 2^15 (16 bits: bit 15 only when a = r, and then the remainder is 0), and
// n = q or -(q + [remainder != 0]) lies in [-2^15, 2^15] (17-bit signed).
//
// Contract. L a power of two, 1 <= L <= DMAX; 4 <= DMAX <= 1024 and DMAX % L == 0; d a multiple
// of L with L <= d <= DMAX; PDEPTH % L == 0, pbase % L == 0 and pbase + d <= PDEPTH <= 2^15 * L;
// M in [2^30, 2^31) (mult[31] is ignored), S in [1, 62], eps in [0, 2^62).
// Table files ($readmemh, PDEPTH/L lines): line i is one L-wide word holding elements
// i*L .. i*L+L-1, element i*L+j in bits [16j +: 16] of GAMMA_FILE's word (4L hex digits, the
// highest element first) and [32j +: 32] of BETA_FILE's (8L hex digits). in_data carries
// elements c*L .. c*L+L-1 of a row in beat c (element c*L+j at bits [16j +: 16]), out_data the
// same elements' int8 results (element j at [8j +: 8]).
//
// Bounds that size the datapath (exact, not approximate). sum xc^2 <= D^3*2^30 <= 2^60, so
// v < 2^60 + 2^62 < 2^63: v >= 2^62 gives k = 0 and w = v < 2^63, smaller v >= 1 give w in
// [2^60, 2^62), v = 0 gives w = 0, r = 1 and xc = 0 everywhere. So r < 2^32 (32 root digits), and
// a <= r (above): the divider's remainder stays below r (32 bits, 33-bit subtracts), and
// n = +-q (q <= 2^15, plus one when a negative numerator leaves a remainder) is 17-bit signed.
// |n*gamma| <= 2^30 and beta is int32, so |acc| <= 3*2^30 - 1 (33-bit signed); with M < 2^31,
// |P| = |acc*M| < 3*2^61 and P + 2^(S-1) < 2^63: int64 never wraps, the unit computes exactly.
// acc*M is four DSP-sized products: acc = ah*2^17 + al (al 17 bits unsigned, ah 16 signed),
// M = mh*2^26 + ml (ml 26 bits, mh 5): A = al*M < 2^48 and B = ah*M (47-bit signed) each add one
// small product to one large one, and P = A + B*2^17 adds on bits 17 and up: bits 17..25 from
// the products' low bits (A[25:0] = al*ml's, B[8:0] = ah*ml's) one stage early, so that the
// add of bits 26 and up (39 bits) takes the carry as its carry-in.
// Rounding without a 64-bit add of 2^(S-1): with R = P >>> (S-1), (P + 2^(S-1)) >>> S =
// (R + 1) >>> 1 exactly, and that lies in [-128, 127] only if R does in [-257, 254]. So each lane
// takes a 10-bit window R' = P[S+8 : S-1] and a flag "all of P's bits from S+8 up are equal"
// (R fits 10 signed bits, R = R'); y = clamp((R' + 1) >>> 1) when the flag is set, else the
// sign's rail.
//
// Dataflow. Every stage is a fixed pipeline without a stall enable; only the input (in_ready)
// and the issue of buffered beats wait.
//   input:  beat -> row buffer (L-wide words, inferred RAM) and, in parallel, L squares, an
//           adder tree of log2(L) levels (one level a clock) and the per-row accumulators.
//   per row (one row a clock, fully pipelined, 44 stages): |S|, D*Q in two DSP products;
//           S^2 in three; D*Q - S^2 in two halves (the low 34 bits with S^2's high half, then
//           the high bits with the borrow); D*T in two; + eps in two 32-bit halves; k and
//           w = v << 2k over three stages (zero bytes; whole bytes; bit pairs); the isqrt
//           fully unrolled, one digit a stage (32 stages, widths growing with the digit).
//           Its (S, k, r) goes into a result FIFO, which never overflows: each entry is a
//           complete row whose beats are still in the buffer, and the buffer holds at most BDW
//           beats (FIFO depth 2^clog2(BDW) >= BDW).
//   issue:  the buffer is re-read one beat a clock, row after row as results arrive, while the
//           output FIFO has a slot reserved for the beat (credits: OFD slots, one taken per
//           issued beat, one returned per accepted output). out_ready therefore gates only the
//           issue and the FIFO, never the 27-stage per-lane pipeline:
//   lanes:  e1 buffer read | e2 D*x | e3 xc = D*x - S, -xc | e4 a = |xc| << k | e5..e20 divider,
//           non-restoring, one quotient bit a stage (divisor shared) | e21 n, table words |
//           e22 n*gamma | e23 + beta | e24 four partial products of acc*M | e25 A, B, P[25:17]
//           | e26 P[64:26] | e27 10-bit window and the fit flag | output FIFO write (y).
// The row buffer, the result FIFO and the output FIFO are vitfpga_fifo instances (a push or a
// pop a clock, the head read without a clock; the row buffer's head is registered at e1).
// The row buffer holds BDW = DMAX/L + 53 + log2(L) beats: at full rate a row's first beat is
// re-read 49 + log2(L) clocks after its last arrived, so it holds at most d/L + 48 + log2(L)
// beats and the input never waits.
//
// Throughput and latency, input always valid and output always ready, any d (d/L >= 1 beat):
// one beat in and one out a clock, rows overlapped, and start -> done takes exactly
//   rows*d/L + d/L + 76 + log2(L) cycles
// (edge sampling start to edge raising done): the last beat is accepted rows*d/L edges after
// start; 2 + log2(L) edges of squares, tree and accumulator; 44 per-row stages; the result FIFO
// write and take (2); 27 lane stages (the first beat's e1 one edge after the take); d/L - 1
// more beats; the output FIFO write (1) and the final acceptance (1), which raises done.
// rows = 0 raises done at the start edge itself. The rate holds for every d, d = L included
// (one row a clock through the per-row pipeline).
// Ports: in_ready, done and idle's busy are flip-flops; out_valid is one LUT from the output
// FIFO's count (out_data its LUT RAM read).
// Logic depth: the widest carry chain in one clock is the 33 + log2(DMAX)-bit Q accumulator
// (D*Q - S^2 and P = A + B*2^17 are split over two stages, see above); the root's digits and
// the divider's stages are 32-bit chains (their sign bit from the operands' bounds, see there)
// that start at flip-flops. vitfpga.sim.depth on Yosys synth_xilinx -flatten, DMAX 192:
// xcup 7 levels at L = 1, 8 and 32 (the Q accumulator and T's low half: LUT + 5 CARRY8 + LUT;
// the window: an SRL read and 6 LUTs; the divider's stage: 2 LUT + 4 CARRY8 + 1); xc7 11 at
// L = 1 (D*x from the DSP, then xc's 7 CARRY4).
// Resources, xcup: L = 8: 63 DSP48E2, ~11.1k LUT, ~12.2k FF, 3 RAMB36 (row buffer); L = 32:
// 231 DSP48E2, ~37.9k LUT (1.3k LUTRAM and SRL: the row buffer, delay lines), ~37.8k FF.
// Per lane: 7 DSPs (x^2, D*x, n*gamma, four for acc*M), ~1.1k LUT, ~1.1k FF.
module vitfpga_layernorm_vec #(
    parameter integer DMAX = 192,          // longest row, a multiple of L
    parameter integer PDEPTH = 192,        // table elements (PDEPTH/L words of L elements)
    parameter integer L = 8,               // lanes: elements a beat, a power of two
    parameter GAMMA_FILE = "ln_gamma.mem", // $readmemh, one L*16-bit word per line
    parameter BETA_FILE = "ln_beta.mem"    // $readmemh, one L*32-bit word per line
) (
    input  wire           clk,
    input  wire           rst_n,
    input  wire           start,     // one-cycle pulse, honoured only while idle; latches d..eps
    input  wire [15:0]    d,         // row length D in elements, a multiple of L, L..DMAX
    input  wire [31:0]    rows,      // rows to normalise; 0 finishes at once (done pulse)
    input  wire [15:0]    pbase,     // element i of every row uses table element pbase + i
    input  wire [31:0]    mult,      // M in [2^30, 2^31)
    input  wire [7:0]     shift,     // S in [1, 62]
    input  wire [63:0]    eps,       // >= 0, < 2^62
    output wire           idle,
    output reg            done,      // one-cycle pulse once the final output beat was accepted
    input  wire [16*L-1:0] in_data,  // L int16 a beat, rows back to back, row-major
    input  wire           in_valid,
    output wire           in_ready,  // a flip-flop
    output wire [8*L-1:0] out_data,  // L int8 a beat, same order
    output wire           out_valid, // one LUT level from flip-flops (the output FIFO's count)
    input  wire           out_ready
);
    localparam integer LL = $clog2(L);          // adder-tree levels
    localparam integer LD = $clog2(DMAX);       // D <= 2^LD
    localparam integer DB = $clog2(DMAX + 1);   // bits of D
    localparam integer SA = 16 + LD;            // |S| <= DMAX*2^15 <= 2^(15+LD)
    localparam integer XW = 17 + LD;            // S and xc = D*x - S, signed
    localparam integer SW = 18 + LD;            // S accumulator (one spare bit over XW)
    localparam integer QW = 33 + LD;            // Q accumulator; Q <= 2^(30+LD)
    localparam integer SH = LD - 1;             // bits of |S| above bit 16
    localparam integer TW = 34 + 2 * LD;        // D*Q, S^2, T = D*Q - S^2 (< 2^(30+2LD))
    localparam integer SXW = 17 + LL;           // tree sums of x
    localparam integer SQW = 32 + LL;           // tree sums of x^2
    localparam integer NN = 2 * L - 1;          // tree nodes, all levels
    localparam integer DW = DMAX / L;           // beats in the longest row
    localparam integer DWB = $clog2(DW + 1);
    localparam integer PW = PDEPTH / L;         // table words
    localparam integer PAB = (PW > 1) ? $clog2(PW) : 1;
    localparam integer RN = 44;                 // per-row stages: 12 before the root, 32 digits
    localparam integer ND = 32;                 // root digits
    // A row's root is in the result FIFO 47 + LL clocks after its last beat arrived and its
    // first beat is re-read two clocks later; the buffer keeps a row plus that many beats.
    localparam integer BDW = DW + 53 + LL;
    localparam integer CNB = $clog2(BDW + 1);
    localparam integer FAB = $clog2(BDW);       // result FIFO: 2^FAB >= BDW entries
    localparam integer NDIV = 16;               // quotient bits (|n| <= 2^15)
    localparam integer NST = 27;                // lane stages e1 .. e27
    localparam integer OAB = $clog2(NST + 2);   // output FIFO: 2^OAB >= NST + 2 slots
    localparam integer OFD = 1 << OAB;
    localparam integer RFW = XW + 5 + 32;       // result FIFO word: S, k, root
    localparam [CNB-1:0] BFULL = BDW[CNB-1:0];

    // ------------------------------------------------------------------------------------------
    // Tables: plain arrays so that synthesis infers ROM. The row buffer, the result FIFO and
    // the output FIFO are vitfpga_fifo instances (below).
    reg [16*L-1:0] grom [0:PW-1];
    reg [32*L-1:0] brom [0:PW-1];
    initial begin
        $readmemh(GAMMA_FILE, grom);
        $readmemh(BETA_FILE, brom);
    end

    // ------------------------------------------------------------------------------------------
    // Run control and the run's constants, latched at start.
    reg         busy;
    wire        go = start && !busy;
    assign idle = !busy;
    reg [DB-1:0]  d_q;
    reg [DWB-1:0] db_last;   // beats a row, less one
    reg [PAB-1:0] pbw_q;     // table word of a row's first beat
    reg [30:0]    m_q;
    reg [5:0]     sh_q;      // S - 1
    reg [72:0]    hm_q;      // bits S+8 and up: where a 10-bit window's sign must extend
    reg [63:0]    eps_q;
    wire [15:0] d_beats = d >> LL;
    wire [15:0] pb_word = pbase >> LL;
    wire [7:0]  sh_m1 = shift - 8'd1;
    wire [7:0]  sh_p8 = shift + 8'd8;

    always @(posedge clk) begin
        if (go) begin
            d_q <= d[DB-1:0];
            db_last <= d_beats[DWB-1:0] - 1'b1;
            pbw_q <= pb_word[PAB-1:0];
            m_q <= mult[30:0];
            sh_q <= sh_m1[5:0];
            hm_q <= {73{1'b1}} << sh_p8;
            eps_q <= eps;
        end
    end

    wire pop = out_valid && out_ready;
    wire out_fin;  // the output beat at the FIFO head is the run's last

    always @(posedge clk) begin
        if (!rst_n) begin
            busy <= 1'b0;
            done <= 1'b0;
        end else begin
            done <= 1'b0;
            if (go) begin
                // An empty run finishes at once rather than waiting for a row that never comes.
                if (rows == 32'd0) done <= 1'b1;
                else busy <= 1'b1;
            end else if (busy && pop && out_fin) begin
                busy <= 1'b0;
                done <= 1'b1;
            end
        end
    end

    // ------------------------------------------------------------------------------------------
    // Input side: row buffer write, squares, adder tree, per-row sums S and Q.
    reg [DWB-1:0] in_col;   // beat index within the row being received
    reg [31:0]    in_rows;  // rows still to receive
    wire [CNB-1:0] cnt;     // buffer beats written and not yet issued
    wire [16*L-1:0] rb_head;
    reg [16*L-1:0] a_x;
    reg           a_v, a_last;
    reg [SXW*NN-1:0] tx;    // tree level l, node i at node index 2L - 2*(L >> l) + i
    reg [SQW*NN-1:0] tq;
    reg [LL:0]    tv, tl;   // per level: valid, last beat of a row
    reg signed [SW-1:0] acc_s;
    reg [QW-1:0]  acc_q;
    reg           st_v;     // one row's (S, Q), a one-clock pulse into the per-row pipeline
    reg signed [SW-1:0] st_s;
    reg [QW-1:0]  st_q;
    wire          issue;    // the output side reads one buffer beat

    // in_ready is a register: in_rows != 0 && cnt != BFULL, computed from the next-state
    // values (so it equals that function every clock) to keep the counters' compares off the
    // port, whose user adds its own logic behind it. in_rows != 0 implies busy (the run ends
    // only after its last row arrived), so busy needs no term. in_more and in_one track
    // in_rows != 0 and in_rows == 1, so that the next state needs no 32-bit compare after a
    // decrement.
    reg           in_rdy, in_more, in_one;
    wire in_col_last = (in_col == db_last);
    assign in_ready = in_rdy;
    wire in_fire = in_valid && in_rdy;
    wire in_row_end = in_fire && in_col_last;
    wire more_next = go ? (rows != 32'd0) : (in_row_end ? !in_one : in_more);
    // The buffer's count after this edge is BFULL: it is full and nothing issues, or one beat
    // short, one arrives and nothing issues (in_fire never happens at BFULL).
    wire full_next = !issue && ((cnt == BFULL) || (in_fire && cnt == BFULL - 1'b1));

    // The row buffer: written as beats arrive, re-read (e1, registered: block RAM) as issued.
    vitfpga_fifo #(.WIDTH(16*L), .DEPTH(BDW)) u_rbuf (
        .clk(clk), .rst_n(rst_n), .clr(1'b0), .push(in_fire), .wdata(in_data), .pop(issue),
        .head(rb_head), .count(cnt));

    always @(posedge clk) begin
        if (!rst_n) begin
            in_col <= {DWB{1'b0}};
            in_rows <= 32'd0;
            in_rdy <= 1'b0;
            in_more <= 1'b0;
            in_one <= 1'b0;
        end else begin
            in_rdy <= more_next && !full_next;
            in_more <= more_next;
            if (go) in_one <= (rows == 32'd1);
            else if (in_row_end) in_one <= (in_rows == 32'd2);
            if (go) begin
                in_col <= {DWB{1'b0}};
                in_rows <= rows;
            end else if (in_fire) begin
                if (in_col_last) begin
                    in_col <= {DWB{1'b0}};
                    in_rows <= in_rows - 32'd1;
                end else begin
                    in_col <= in_col + 1'b1;
                end
            end
        end
    end

    // a: the beat. Tree level 0: each element widened and squared (<= 2^30); levels 1..LL:
    // pairwise sums, one level a clock. Then the row sums, restarted after each row's last beat.
    wire [LL+1:0] tv_next = {tv, a_v};
    wire [LL+1:0] tl_next = {tl, a_last};
    always @(posedge clk) begin
        a_x <= in_data;
        a_last <= in_col_last;
        tl <= tl_next[LL:0];
    end

    genvar j, g, l;
    generate
        for (j = 0; j < L; j = j + 1) begin : g_sq
            wire signed [15:0] x = a_x[16*j +: 16];
            wire signed [31:0] sq = x * x;
            wire unused_sq = sq[31];
            always @(posedge clk) begin
                tx[SXW*j +: SXW] <= {{(SXW-16){x[15]}}, x};
                tq[SQW*j +: SQW] <= {{(SQW-31){1'b0}}, sq[30:0]};
            end
        end
        for (l = 1; l <= LL; l = l + 1) begin : g_lvl
            for (j = 0; j < (L >> l); j = j + 1) begin : g_node
                localparam integer C = 2 * L - 2 * (L >> (l - 1)) + 2 * j;  // first child
                localparam integer N = 2 * L - 2 * (L >> l) + j;
                always @(posedge clk) begin
                    tx[SXW*N +: SXW] <= tx[SXW*C +: SXW] + tx[SXW*(C+1) +: SXW];
                    tq[SQW*N +: SQW] <= tq[SQW*C +: SQW] + tq[SQW*(C+1) +: SQW];
                end
            end
        end
    endgenerate

    wire [SXW-1:0] top_x = tx[SXW*(NN-1) +: SXW];
    wire [SQW-1:0] top_q = tq[SQW*(NN-1) +: SQW];
    wire signed [SW-1:0] add_s = acc_s + $signed({{(SW-SXW){top_x[SXW-1]}}, top_x});
    wire [QW-1:0] add_q = acc_q + {{(QW-SQW){1'b0}}, top_q};

    always @(posedge clk) begin
        if (!rst_n) begin
            a_v <= 1'b0;
            tv <= {(LL+1){1'b0}};
            st_v <= 1'b0;
            acc_s <= {SW{1'b0}};
            acc_q <= {QW{1'b0}};
        end else begin
            a_v <= in_fire;
            tv <= tv_next[LL:0];
            st_v <= tv[LL] && tl[LL];
            if (tv[LL]) begin
                acc_s <= tl[LL] ? {SW{1'b0}} : add_s;
                acc_q <= tl[LL] ? {QW{1'b0}} : add_q;
            end
        end
    end
    always @(posedge clk) begin
        st_s <= add_s;
        st_q <= add_q;
    end

    // ------------------------------------------------------------------------------------------
    // Per-row pipeline, one row a clock, no stall: stage i holds a row while rv[i].
    //   r1 |S|, D*Qlo, D*Qhi | r2 S^2's three products, D*Q | r3 S^2's low sum |
    //   r4 S^2's high half, T's low half and borrow | r5 T = D*Q - S^2 |
    //   r6 D*Tlo, D*Thi | r7 D*T | r8, r9 v = D*T + eps in two halves | r10 the zero bytes of
    //   v << 2 | r11 G of them leading, v << 8G | r12 k (4G + leading zero bit pairs, see below),
    //   w = v << 2k | r13 .. r44 the 32 root digits. The row's S and k ride in shift registers
    //   beside it.
    reg [RN:1] rv;
    reg [XW*RN-1:0] rs_dl;        // S, stage 1 .. RN
    reg [5*(RN-11)-1:0] rk_dl;    // k, stage 12 .. RN
    always @(posedge clk) begin
        if (!rst_n) rv <= {RN{1'b0}};
        else rv <= {rv[RN-1:1], st_v};
        rs_dl <= {rs_dl[XW*(RN-1)-1:0], st_s[XW-1:0]};
    end

    wire [SW-1:0] st_abs = st_s[SW-1] ? -st_s : st_s;
    reg [SA-1:0]      r1_sa;
    reg [DB+23:0]     r1_dql;
    reg [DB+LD+6:0]   r1_dqh;
    reg [33:0]        r2_ll;
    reg [16+SH:0]     r2_lh;
    reg [2*SH-1:0]    r2_hh, r3_hh;
    reg [TW-1:0]      r2_dq, r3_dq, r3_ssa, r5_t;
    reg [34:0]        r4_tlo;   // T's low 34 bits and, at bit 34, their borrow
    reg [2*LD-1:0]    r4_dqh, r4_ssh;  // bits 34 and up of D*Q and of S^2
    reg [DB+25:0]     r6_p0;
    reg [DB+2*LD+3:0] r6_p1;
    reg [63:0]        r7_dt, r9_v, r10_v, r11_v;
    reg [32:0]        r8_lo;
    reg [31:0]        r8_hi;
    reg [7:0]         r10_z;    // byte i of u = v << 2 is zero (byte 7: and v's top pair)
    reg               r10_t, r11_t;  // v >= 2^62
    reg [2:0]         r11_g;    // leading zero bytes of u (v != 0)
    reg               r11_0;    // v = 0
    wire [16:0]   sa_l = r1_sa[16:0];
    wire [SH-1:0] sa_h = r1_sa[SA-1:17];
    wire [2*LD:0] t_hi = {r4_dqh, 1'b1} + {~r4_ssh, !r4_tlo[34]};
    wire [37:0]   dt_hi = {{(38-DB){1'b0}}, r6_p0[DB+25:26]}
                          + {{(34-DB-2*LD){1'b0}}, r6_p1};

    // k: the largest k <= 31 with v < 2^(62-2k), as _norm_shift (31 when v = 0): 0 when
    // v >= 2^62, else the leading zero bit pairs of u = v << 2 (v's below its zero top pair),
    // capped at 31. Over three stages, no stage a 64-bit priority encoder plus a shift: u's
    // zero bytes (r10); G leading zero bytes of u and v << 8G (r11); the leading zero pairs of
    // the top byte of u << 8G, 0..3 when v != 0, give k = 4G + that and w = v << 2k (r12).
    // v >= 2^62 forces G = 0 (byte 7's flag) and the pairs to 0; v = 0 gives k = 31, w = 0.
    reg [2:0] lz_g;
    reg       lz_a;  // bytes 7 .. 8-li all zero
    integer li, zi;
    always @(*) begin
        lz_g = 3'd0;
        lz_a = 1'b1;
        for (li = 1; li < 8; li = li + 1) begin
            lz_a = lz_a && r10_z[8-li];
            if (lz_a) lz_g = li[2:0];
        end
    end
    wire [5:0] top6 = r11_v[61:56];  // u << 8G's top byte but its last pair (3 either way)
    wire [1:0] lz_p = (r11_t || top6[5:4] != 2'b00) ? 2'd0 : (top6[3:2] != 2'b00) ? 2'd1
                      : (top6[1:0] != 2'b00) ? 2'd2 : 2'd3;
    wire [63:0] u9 = {r9_v[61:0], 2'b00};
    wire [4:0]  k12 = r11_0 ? 5'd31 : {r11_g, lz_p};
    wire [63:0] w0 = r11_v << {lz_p, 1'b0};  // < 2^63 (0 when v = 0)

    always @(posedge clk) begin
        r1_sa <= st_abs[SA-1:0];
        r1_dql <= {24'd0, d_q} * {{DB{1'b0}}, st_q[23:0]};
        r1_dqh <= {{(LD+7){1'b0}}, d_q} * {{DB{1'b0}}, st_q[LD+30:24]};
        r2_ll <= {17'd0, sa_l} * {17'd0, sa_l};
        r2_lh <= {{SH{1'b0}}, sa_l} * {17'd0, sa_h};
        r2_hh <= sa_h * sa_h;
        // D*Qhi <= 2^(6+2LD): its top bit when D has one bit more than LD is zero.
        r2_dq <= {{(TW-DB-24){1'b0}}, r1_dql} + {3'd0, r1_dqh[2*LD+6:0], 24'd0};
        r3_ssa <= {{(TW-34){1'b0}}, r2_ll} + {{LD{1'b0}}, r2_lh, 18'd0};
        r3_hh <= r2_hh;
        r3_dq <= r2_dq;
        // T = D*Q - S^2 in two halves (no TW-bit carry chain in one clock): S^2's low 34
        // bits are ssa's, so T's low half and its borrow are known here, with S^2's high half.
        r4_tlo <= {1'b0, r3_dq[33:0]} - {1'b0, r3_ssa[33:0]};
        r4_dqh <= r3_dq[TW-1:34];
        r4_ssh <= r3_ssa[TW-1:34] + {2'd0, r3_hh};
        // high half = dqh - ssh - borrow = dqh + ~ssh + !borrow: one chain, the carry-in in
        // a spare low bit.
        r5_t <= {t_hi[2*LD:1], r4_tlo[33:0]};  // < 2^(30+2LD)
        r6_p0 <= {26'd0, d_q} * {{DB{1'b0}}, r5_t[25:0]};
        r6_p1 <= {{(2*LD+4){1'b0}}, d_q} * {{DB{1'b0}}, r5_t[2*LD+29:26]};
        r7_dt <= {dt_hi, r6_p0[25:0]};
        r8_lo <= {1'b0, r7_dt[31:0]} + {1'b0, eps_q[31:0]};
        r8_hi <= r7_dt[63:32];
        r9_v <= {r8_hi + eps_q[63:32] + {31'd0, r8_lo[32]}, r8_lo[31:0]};
        r10_v <= r9_v;
        for (zi = 0; zi < 7; zi = zi + 1) r10_z[zi] <= (u9[8*zi +: 8] == 8'd0);
        r10_z[7] <= (r9_v[63:54] == 10'd0);
        r10_t <= (r9_v[63:62] != 2'b00);
        r11_v <= r10_v << {lz_g, 3'b000};
        r11_t <= r10_t;
        r11_g <= lz_g;
        r11_0 <= &r10_z;
        rk_dl <= {rk_dl[5*(RN-12)-1:0], k12};
    end

    // The root of w, digit by digit (as intmath.isqrt), one digit a stage: slot g holds the
    // remainder (g+1 bits: rem <= 2q), the root so far q (g bits), w's unread bits and the
    // next digit's two bits of w. w's bits ride in shift registers (SRLs); each pair is taken
    // into a flip-flop (sq_n, given a reset so that it cannot join the SRL) one stage before
    // its digit, so that a digit's subtract starts at flip-flops, not at an SRL read.
    reg [34*(ND+1)-1:0] sq_r;
    reg [34*(ND+1)-1:0] sq_q;
    reg [64*(ND+1)-1:0] sq_w;
    reg [2*(ND+1)-1:0]  sq_n;
    always @(posedge clk) begin
        sq_r[33:0] <= 34'd0;
        sq_q[33:0] <= 34'd0;
        sq_w[63:0] <= w0;
    end
    always @(posedge clk) begin
        if (!rst_n) sq_n[1:0] <= 2'b00;
        else sq_n[1:0] <= w0[63:62];
    end
    generate
        for (g = 1; g <= ND; g = g + 1) begin : g_root
            // rp = 4*rem + pr against 4q + 1: the low two bits are pr - 1, borrowing when
            // pr = 0, and the high ones rem - q - borrow. rem <= 2q (the root's remainder
            // bound) and q < 2^(g-1) put that in [-2^(g-1), 2^(g-1)): g bits, two's
            // complement, hold it and its sign, so the carry chain is g bits long (the borrow
            // its carry-in), not g + 3.
            wire [g-1:0] rem = sq_r[34*(g-1) +: g];
            wire [1:0]   pr = sq_n[2*(g-1) +: 2];
            wire [g-1:0] qq = sq_q[34*(g-1) +: g];  // the root so far (bit g-1 is 0)
            wire [g:0]   cz = {{g{1'b0}}, pr != 2'b00};
            wire [g-1:0] dh = rem + ~qq + cz[g-1:0];
            wire         ge = !dh[g-1];
            wire [g+1:0] df = {dh, pr - 2'd1};      // rp - (4q + 1) when ge
            wire [g+1:0] rp = {rem, pr};
            wire         unused_df = &{1'b0, df[g+1], rp[g+1], cz[g]};  // rem' fits g+1 bits
            always @(posedge clk) begin
                sq_r[34*g +: 34] <= {{(33-g){1'b0}}, ge ? df[g:0] : rp[g:0]};
                sq_q[34*g +: 34] <= {{(33-g){1'b0}}, sq_q[34*(g-1) +: g], ge};
                sq_w[64*g +: 64] <= {sq_w[64*(g-1) +: 62], 2'b00};
            end
            always @(posedge clk) begin
                if (!rst_n) sq_n[2*g +: 2] <= 2'b00;
                else sq_n[2*g +: 2] <= sq_w[64*(g-1) + 60 +: 2];
            end
        end
    endgenerate

    // Result FIFO: (S, k, root) per row, root = 0 only when every xc is 0 (then 1).
    wire [31:0] root = sq_q[34*ND +: 32];
    wire [FAB:0]   rf_cnt;
    wire [RFW-1:0] rf_head;
    wire           rt_take;  // the issue side takes the FIFO head
    vitfpga_fifo #(.WIDTH(RFW), .DEPTH(1 << FAB)) u_rfifo (
        .clk(clk), .rst_n(rst_n), .clr(1'b0), .push(rv[RN]),
        .wdata({rs_dl[XW*RN-1 -: XW], rk_dl[5*(RN-11)-1 -: 5], (root == 32'd0) ? 32'd1 : root}),
        .pop(rt_take), .head(rf_head), .count(rf_cnt));

    // ------------------------------------------------------------------------------------------
    // Issue: one buffer beat a clock, row after row as results arrive, while a slot of the
    // output FIFO is free for it (credit: slots neither holding nor promised to a beat).
    reg           o_active;
    reg [DWB-1:0] o_col;
    reg [PAB-1:0] o_tidx;   // table word of the beat being issued
    reg [31:0]    o_rows;   // rows not yet started on the output side
    reg           o_final;  // the active row is the run's last
    reg [RFW-1:0] o_res;    // the active row's {S, k, root}
    reg [OAB:0]   credit;
    wire o_end = (o_col == db_last);
    assign issue = o_active && (credit != {(OAB+1){1'b0}});
    assign rt_take = (rf_cnt != {(FAB+1){1'b0}}) && (!o_active || (issue && o_end));

    always @(posedge clk) begin
        if (!rst_n) begin
            o_active <= 1'b0;
            o_rows <= 32'd0;
            credit <= OFD[OAB:0];
        end else begin
            if (go) o_rows <= rows;
            if (rt_take) begin
                o_active <= 1'b1;
                o_rows <= o_rows - 32'd1;
            end else if (issue && o_end) begin
                o_active <= 1'b0;
            end
            if (issue && !pop) credit <= credit - 1'b1;
            else if (!issue && pop) credit <= credit + 1'b1;
        end
    end

    always @(posedge clk) begin
        if (rt_take) begin
            o_col <= {DWB{1'b0}};
            o_tidx <= pbw_q;
            o_final <= (o_rows == 32'd1);
            o_res <= rf_head;
        end else if (issue) begin
            o_col <= o_col + 1'b1;
            o_tidx <= o_tidx + 1'b1;
        end
    end

    // ------------------------------------------------------------------------------------------
    // Lane pipeline e1 .. e27 (no enable). Per-beat values shared by the lanes ride in shift
    // registers: S to e2, k to e3, the root (the divisor) to e19, the table word to e20.
    reg [NST:1]        pv, pf;  // valid, last beat of the run
    reg [16*L-1:0]     s1_x;
    reg [XW*2-1:0]     od_s;
    reg [5*3-1:0]      od_k;
    reg [32*19-1:0]    od_r;
    reg [32:0]         od_nr;  // -root at e20
    reg [PAB*20-1:0]   od_p;
    reg [16*L-1:0]     gw;
    reg [32*L-1:0]     bw;
    wire [8*L-1:0]     yv;
    always @(posedge clk) begin
        if (!rst_n) begin
            pv <= {NST{1'b0}};
            pf <= {NST{1'b0}};
        end else begin
            pv <= {pv[NST-1:1], issue};
            pf <= {pf[NST-1:1], issue && o_final && o_end};
        end
    end
    // The root's delay line has a reset only so that it stays flip-flops: as a shift register
    // (SRL) its first divider tap would be an SRL read, one level ahead of the subtract.
    always @(posedge clk) begin
        if (!rst_n) od_r <= {(32*19){1'b0}};
        else od_r <= {od_r[32*18-1:0], o_res[31:0]};
    end
    always @(posedge clk) begin
        s1_x <= rb_head;
        od_s <= {od_s[XW-1:0], o_res[RFW-1 -: XW]};
        od_k <= {od_k[9:0], o_res[36:32]};
        od_p <= {od_p[PAB*19-1:0], o_tidx};
        od_nr <= -{1'b0, od_r[32*18 +: 32]};
        gw <= grom[od_p[PAB*19 +: PAB]];
        bw <= brom[od_p[PAB*19 +: PAB]];
    end

    generate
        for (j = 0; j < L; j = j + 1) begin : g_lane
            wire signed [15:0] x = s1_x[16*j +: 16];
            wire signed [XW-1:0] dxw = $signed({{(XW-DB){1'b0}}, d_q})
                                       * $signed({{(XW-16){x[15]}}, x});
            reg signed [XW-1:0] dx, xc, xn;              // e2; e3: xc and -xc
            reg [33*(NDIV+1)-1:0] dr;                    // e4 + g: remainder R (slot 0: a)
            reg [16*(NDIV+1)-1:0] dq;                    // quotient bits so far
            reg [NDIV:0]          dn;                    // xc < 0
            reg signed [16:0]     n;                     // e21
            reg signed [32:0]     prod, acc;             // e22, e23
            reg signed [31:0]     b22;
            reg [42:0]            pp0;                   // e24: al*ml, ah*ml, al*mh, ah*mh
            reg signed [41:0]     pp1;
            reg [21:0]            pp2;
            reg signed [20:0]     pp3;
            reg [47:0]            pa;                    // e25: A = al*M, B = ah*M
            reg signed [47:0]     pb;
            reg [9:0]             pm;                    // e25: P[25:17] and its carry
            reg signed [38:0]     phi;                   // e26: P = phi*2^26 + pmid*2^17 + plo
            reg [8:0]             pmid;
            reg [16:0]            plo;
            reg signed [9:0]      win;                   // e27
            reg                   fit, sgn;
            integer i;

            wire [XW-1:0] xabs = xc[XW-1] ? xn : xc;  // < 2^(16+LD)
            wire unused_xabs = xabs[XW-1];
            wire [31:0]   ash = {{(33-XW){1'b0}}, xabs[XW-2:0]} << od_k[10 +: 5];  // a <= r
            wire [33*NDIV-1:0] rn;
            wire [NDIV-1:0]    qb;
            for (g = 1; g <= NDIV; g = g + 1) begin : g_div
                // Non-restoring: R_g = 2*rem_(g-1) - r in every stage, the quotient bit is
                // R_g >= 0 (the restoring divider's bits, exactly), and rem_g = R_g or R_g + r.
                // So R_g = 2R - r after a non-negative R, 2R + r after a negative one: one adder
                // a stage, no restoring mux. Stage 1 takes a - r (a <= r: quotient bit 15).
                wire [32:0] rp = dr[33*(g-1) +: 33];
                wire [31:0] dv = od_r[32*(2+g) +: 32];
                wire [32:0] sum;  // R_g in [-r, r): 33-bit signed, computed mod 2^33
                if (g == 1) begin : g_first
                    // a - r with a <= r: 0 when a = r, else negative, bit 32 set (|a - r| <
                    // 2^32). So bit 32 is a != r, beside a 32-bit chain rather than atop 33.
                    wire [31:0] lo = rp[31:0] - dv;
                    wire unused_rp = rp[32];  // a < 2^32
                    assign sum = {rp[31:0] != dv, lo};
                end else begin : g_next
                    // 2R -+ r: its bit 0 is r's (2R's is 0), and bits 1..32 add 2R's bits
                    // 1..32 (R's 0..31) to r's bits 1..32, inverted when subtracting, with the
                    // carry out of bit 0 as the carry-in (a 32-bit chain, not 34).
                    wire pos = !rp[32];
                    wire [31:0] hi = rp[31:0] + ({1'b0, dv[31:1]} ^ {32{pos}})
                                     + {31'd0, pos && !dv[0]};
                    assign sum = {hi, dv[0]};
                end
                assign qb[g-1] = !sum[32];
                assign rn[33*(g-1) +: 33] = sum;
            end

            wire [15:0] q = dq[16*NDIV +: 16];
            wire        neg = dn[NDIV];
            wire [32:0] rlast = dr[33*NDIV +: 33];
            // remainder != 0: R != 0 after a set last bit, R + r != 0 (R != -r) otherwise
            wire        rnz = q[0] ? (|rlast) : (rlast != od_nr);
            // floor division: n = q, or -(q + 1) = ~q when a negative xc leaves a remainder,
            // or -q without one. -q is computed beside the remainder test and selected after
            // it, so that the test's compare and the negation's carry chain do not add up.
            wire [16:0] qneg = -{1'b0, q};
            wire [16:0] nval = !neg ? {1'b0, q} : rnz ? ~{1'b0, q} : qneg;
            wire signed [15:0] gm = gw[16*j +: 16];
            wire [16:0] al = acc[16:0];
            wire signed [15:0] ah = acc[32:17];
            wire [25:0] ml = m_q[25:0];
            wire [4:0]  mh = m_q[30:26];
            wire [72:0] pext = {{8{phi[38]}}, phi, pmid, plo};
            // P's bits from 26 up: A[47:26] + B[47:9] + the carry out of bit 25, the carry-in
            // riding in a spare low bit (one carry chain).
            wire [39:0] phs = {{17'd0, pa[47:26]}, 1'b1} + {pb[47:9], pm[9]};
            wire unused_p = &{1'b0, phs[0], pa[25:17], pb[8:0]};  // added at e25 (pm)
            wire signed [10:0] w1 = {win[9], win} + 11'sd1;
            wire signed [9:0]  h = w1[10:1];  // (R + 1) >>> 1, in [-256, 256]
            wire unused_w1 = w1[0];
            assign yv[8*j +: 8] = !fit ? (sgn ? 8'h80 : 8'h7f)
                                  : (!h[9] && h[8:7] != 2'b00) ? 8'h7f
                                  : (h[9] && h[8:7] != 2'b11) ? 8'h80 : h[7:0];

            always @(posedge clk) begin
                dx <= dxw;
                xc <= dx - $signed(od_s[XW +: XW]);
                xn <= $signed(od_s[XW +: XW]) - dx;  // |xc| is a select at e4, not an adder
                dr[32:0] <= {1'b0, ash};
                dq[15:0] <= 16'd0;
                dn[0] <= xc[XW-1];
                for (i = 1; i <= NDIV; i = i + 1) begin
                    dr[33*i +: 33] <= rn[33*(i-1) +: 33];
                    dq[16*i +: 16] <= {dq[16*(i-1) +: 15], qb[i-1]};
                    dn[i] <= dn[i-1];
                end
                n <= nval;
                prod <= $signed({{16{n[16]}}, n}) * $signed({{17{gm[15]}}, gm});  // |.| <= 2^30
                b22 <= bw[32*j +: 32];
                acc <= prod + $signed({b22[31], b22});
                pp0 <= {26'd0, al} * {17'd0, ml};
                pp1 <= $signed({{26{ah[15]}}, ah}) * $signed({16'd0, ml});
                pp2 <= {5'd0, al} * {17'd0, mh};
                pp3 <= $signed({{5{ah[15]}}, ah}) * $signed({16'd0, mh});
                pa <= {{5'd0, pp0[42:26]} + pp2, pp0[25:0]};
                pb <= {{{6{pp1[41]}}, pp1[41:26]} + {pp3[20], pp3}, pp1[25:0]};
                // P = A + B*2^17 without a 48-bit carry chain in one clock: bits 17..25 add
                // A's and B's low bits, which the products give directly (A[25:0] = al*ml's,
                // B[25:0] = ah*ml's), one stage early.
                pm <= {1'b0, pp0[25:17]} + {1'b0, pp1[8:0]};
                phi <= $signed(phs[39:1]);
                pmid <= pm[8:0];
                plo <= pa[16:0];
                win <= pext[{1'b0, sh_q} +: 10];
                fit <= (&(pext | ~hm_q)) || !(|(pext & hm_q));
                sgn <= phi[38];
            end
        end
    endgenerate

    // ------------------------------------------------------------------------------------------
    // Output FIFO (first word falls through): out_data holds until accepted.
    // Entries are {last beat of the run, L results}.
    wire [OAB:0]  of_cnt;
    wire [8*L:0]  of_head;
    vitfpga_fifo #(.WIDTH(8*L + 1), .DEPTH(OFD)) u_ofifo (
        .clk(clk), .rst_n(rst_n), .clr(1'b0), .push(pv[NST]), .wdata({pf[NST], yv}),
        .pop(pop), .head(of_head), .count(of_cnt));
    assign out_valid = (of_cnt != {(OAB+1){1'b0}});
    assign out_data = of_head[8*L-1:0];
    assign out_fin = of_head[8*L];

    // Bits the contract leaves unused (d's and pbase's beyond DMAX / PDEPTH, pbase's low bits,
    // mult[31]) and bounds the arithmetic proves zero (see the header).
    wire unused_ok = &{1'b0, d_beats, pb_word, sh_m1, sh_p8, mult[31], tv_next, tl_next, st_abs,
                       st_q, st_s, r1_dqh, r5_t, t_hi, w0, sq_r, sq_q, sq_w, sq_n};
endmodule
