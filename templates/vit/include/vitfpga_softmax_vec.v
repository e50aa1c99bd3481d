`timescale 1ns/1ps
// Vector integer softmax unit: `vitfpga.runtime.intmath.int_softmax` over rows of t int32
// scores, L scores a clock, bit exact (L = 1 is the one-score-a-clock unit). Per row:
//   d     = max(row) - s                          (0 .. 2^32-1)
//   u     = (d*M + 2^(S-1)) >> S                  (exact: d*M < 2^63)
//   e     = lut[u & 255] >> min(u >> 8, 62)
//   recip = 2^40 // sum(e)                        (once per row)
//   p     = (e * (recip*prob_max) + 2^39) >> 40   (0 .. prob_max)
//
// Beats: a row of t scores is B = ceil(t/L) beats of L lanes (element j of a beat at bits
// [32j +: 32]); its last beat carries t - L*(B-1) scores in its low lanes, the others are don't
// care. Output beats have the same structure; lanes past t output 0 (their e is forced to 0, so
// the row sum ignores them and p = (0 + 2^39) >> 40 = 0).
//
// Three stages joined by FIFOs, each one beat a clock, so that rows overlap freely:
//   A  input beats into the score FIFO; the beat's lane maximum through a pipelined tree
//      (log2 L levels, masked lanes read as -2^31), then the running row maximum, pushed into
//      the max FIFO with the row's last beat.
//   B  once a row's maximum is known: its beats back out of the score FIFO, per lane d, d*M
//      (four registered partial products, summed in two stages of short adds), the rounding
//      shift in two steps, the ROM read, the exponent shift, e (masked) into the e FIFO; the
//      beat's e sum through a pipelined adder tree, the row sum accumulated and handed to the
//      divider with the row's last beat.
//   Div  2^40 // sum fully pipelined: 20 restoring radix-2 stages (one quotient bit each, one
//      subtractor of 24 + log2 TMAX bits), then * prob_max, into the recip FIFO. A new
//      division can start every clock, so rows of any length (even B = 1) keep full rate.
//   D  once a row's recip*prob_max is in the FIFO: its e beats back out, per lane e * recip,
//      rounding, out. Its pipeline has one enable, low only while out_ready holds an output
//      back, so nothing is lost or duplicated under backpressure; B stops when the e FIFO has
//      no credit left and A (in_ready) when the score FIFO is full.
// The four FIFOs (scores, maxima, e, recips) are vitfpga_fifo instances (vitfpga_fifo.v), each
// head read through a register of its stage.
// Every row-level FIFO entry belongs to a row that still has beats in the FIFO before it, so
// the max FIFO needs no more entries than the score FIFO and the recip FIFO no more than the e
// FIFO: neither can overflow. The FIFOs are sized (localparams SDEPTH, EDEPTH) so that the
// full-rate occupancy never reaches them.
//
// Timing (rows R >= 1, t >= 1, B = ceil(t/L), input always valid, output always ready; cycles
// from the clock edge that takes `start` to the edge that raises `done`, measured by
// tests/sim/test_softmax_vec_unit.py):
//   (R + 2)*B + 2*log2(L) + 37 exactly, for every t and L: one beat a clock in and out, rows
//   back to back (a row every B clocks, B = 1 included). Latency 3*B + 2*log2(L) + 37: a row's
//   max is known only after its last beat and its sum only after its last e, so its three
//   passes (in, e, out) follow one another; 2*log2(L) is the two lane trees, 37 the rest
//   (B 10 stages, the divider 21, D 4, and the hand-offs between the FIFOs).
//   At t = 197: L = 32 takes 7*R + 61, L = 64 4*R + 57.
//
// Resources (Yosys 0.70 synth_xilinx -family xcup -flatten, TMAX = 256, this module as top):
//   per lane 6 DSP48E2 (d*M as four partial products, e * recip*prob_max as two), plus one for
//   recip * prob_max; the 256 x 23 exp ROM, one array per lane pair, becomes LUT logic ("FF
//   mapping": a constant mux tree per read port), no block RAM; the FIFOs go to block RAM or
//   LUT RAM by depth and width.
//   L = 8:  49 DSP48E2, 3 RAMB36E2 + 1 RAMB18E2 (e and recip FIFOs), 6,873 LUTs (+ 42 RAM64M8,
//           160 SRL), 6,130 FFs, 719 CARRY4.
//   L = 32: 193 DSP48E2, no block RAM (every FIFO in 77 RAM32M16 + 110 RAM64M8), 21,521 LUTs
//           (+ 568 SRL), 20,482 FFs, 2,120 CARRY4.
//   Ports: in_ready, out_valid, done and idle's busy are flip-flops (in_ready computed from
//   the counters' next state, so the timing above is unchanged).
//   Logic depth (vitfpga.sim.depth, TMAX 256): xcup 7 levels at L = 8 and 64, 8 at L = 16
//   (budget 8 at 250 MHz); xc7 12 at L = 8, 16, 64 (budget 12 at 100 MHz). The deepest paths
//   are the partial-product add (6 CARRY8 or 11 CARRY4, + 1 LUT) and the exp ROM's LUT mux.
//
// Assumptions beyond the port list: L a power of two (1..64), t <= TMAX, lut[0] >= 2^21 (true
// for intmath.EXP2_LUT, lut[0] = 2^22: the row's maximum contributes lut[0] to the sum, so
// recip = 2^40 // sum <= 2^19 and recip*prob_max < 2^26). t = 0, like rows = 0, finishes at
// once.
module vitfpga_softmax_vec #(
    parameter integer TMAX = 256,           // longest row (elements)
    parameter integer L = 8,                // lanes: scores per beat, a power of two 1..64
    parameter integer EXP_BLOCK = 0,        // 1: the exp ROM in block RAM (by attribute)
    parameter EXP_FILE = "exp2_lut.mem"     // $readmemh, 256 lines, unsigned value < 2^23
) (
    input  wire           clk,
    input  wire           rst_n,
    input  wire           start,     // one-cycle pulse, taken only while idle; latches t..prob_max
    input  wire [15:0]    t,         // row length (elements), 1..TMAX
    input  wire [31:0]    rows,      // rows; 0 finishes at once (done pulse)
    input  wire [31:0]    mult,      // M of the score rescale, < 2^31
    input  wire [7:0]     shift,     // S in [1, 62]
    input  wire [7:0]     prob_max,  // 1..127
    output wire           idle,
    output reg            done,      // one-cycle pulse once the final output beat was accepted
    input  wire [L*32-1:0] in_data,  // L int32 scores, lane j at [32j +: 32]
    input  wire           in_valid,
    output wire           in_ready,  // a flip-flop
    output wire [L*8-1:0] out_data,  // L probabilities 0..prob_max, lane j at [8j +: 8]
    output wire           out_valid, // a flip-flop
    input  wire           out_ready
);
    localparam integer LT = (L > 1) ? $clog2(L) : 0;          // tree levels
    localparam integer BMAX = (TMAX + L - 1) / L;               // beats of the longest row
    localparam integer BW = (BMAX > 1) ? $clog2(BMAX) : 1;      // beat index
    // Full-rate occupancies: the score FIFO holds a row plus what arrives while its maximum
    // goes through the tree (about LT + 2 clocks); the e FIFO a row plus the beats B issues
    // while the row's e goes through B, the sum tree and the divider (about LT + 34 clocks).
    // Each gets a little more, rounded up to a power of two.
    localparam integer SDEPTH = 1 << $clog2(BMAX + LT + 4);
    localparam integer EDEPTH = 1 << $clog2(BMAX + LT + 38);
    localparam integer SAW = $clog2(SDEPTH);
    localparam integer EAW = $clog2(EDEPTH);
    localparam integer TW = 23 + LT;  // one beat's e sum
    localparam integer SUMW0 = 23 + ((TMAX > 1) ? $clog2(TMAX) : 0);  // row sum, exact
    localparam integer SUMW = (SUMW0 > TW) ? SUMW0 : TW;
    localparam integer QW = 20;       // 2^40 // sum with sum >= 2^21
    localparam integer RPW = 26;      // recip * prob_max < 2^26 (recip <= 2^19)
    localparam integer PW = 23 + RPW; // e * recip * prob_max
    /* verilator lint_off WIDTHTRUNC */
    localparam [6:0] LMASK = L - 1;
    localparam [SAW:0] SFULL = SDEPTH;
    localparam [EAW:0] EFULL = EDEPTH;
    /* verilator lint_on WIDTHTRUNC */
    localparam [SUMW-1:0] REM0 = 1 << (40 - QW);  // the remainder after the quotient's zero bits

    // ------------------------------------------------------------------------------------------
    // Memories: the four FIFOs are vitfpga_fifo instances (score beats, row maxima, e beats,
    // recip*prob_max per row; below), each read through a register so that synthesis can use
    // block RAM; the exp ROM, one copy per lane pair, is declared with stage B.

    // ------------------------------------------------------------------------------------------
    // Run control. The run's parameters are latched at start; the inputs may change afterwards.
    reg          busy;
    reg [31:0]   rows_m1;   // rows - 1
    reg [BW-1:0] b_last;    // B - 1
    reg [L-1:0]  mask_last; // valid lanes of a row's last beat
    reg [30:0]   m_q;
    reg [5:0]    sm1_q;     // S - 1
    reg [6:0]    pm_q;
    wire go = start && !busy;
    assign idle = !busy;

    /* verilator lint_off UNUSEDSIGNAL */
    wire [15:0] t_m1 = t - 16'd1;
    wire [15:0] b_m1 = t_m1 >> LT;
    wire        unused_ok = &{mult[31], shift[7:6], prob_max[7]};  // zero by the contract
    /* verilator lint_on UNUSEDSIGNAL */
    // Lane j is valid in a row's last beat when j <= (t-1) mod L.
    wire [7:0]   lanes_last = {1'b0, t_m1[6:0] & LMASK} + 8'd1;  // 1..L
    wire [L-1:0] mask_in;
    genvar gj;
    generate
        for (gj = 0; gj < L; gj = gj + 1) begin : lane_mask
            localparam [7:0] J = gj;
            assign mask_in[gj] = (lanes_last > J);
        end
    endgenerate
    always @(posedge clk) begin
        if (go) begin
            rows_m1 <= rows - 32'd1;
            b_last <= b_m1[BW-1:0];
            mask_last <= mask_in;
            m_q <= mult[30:0];
            sm1_q <= shift[5:0] - 6'd1;
            pm_q <= prob_max[6:0];
        end
    end

    reg  out_last;  // the output register holds the run's final beat
    reg  out_v;
    assign out_valid = out_v;
    wire out_fire = out_v && out_ready;
    always @(posedge clk) begin
        if (!rst_n) begin
            busy <= 1'b0;
            done <= 1'b0;
        end else begin
            done <= 1'b0;
            if (go) begin
                // An empty run finishes at once rather than waiting for a beat that never comes.
                if (rows == 32'd0 || t == 16'd0) done <= 1'b1;
                else busy <= 1'b1;
            end else if (busy && out_fire && out_last) begin
                busy <= 1'b0;
                done <= 1'b1;
            end
        end
    end

    // ------------------------------------------------------------------------------------------
    // FIFO bookkeeping. Counts: score beats written by A and not yet issued by B (s_used), row
    // maxima pushed and not popped (m_cnt), e beats issued by B and not yet read by D (e_used:
    // counting at B's issue reserves room for the beats in B's pipeline), recips (r_cnt). The
    // FIFOs keep their own pointers and counts; e_used is kept here. A run's start (go) empties
    // them all.
    wire [SAW:0]   s_used, m_cnt;
    wire [EAW:0]   r_cnt;
    reg  [EAW:0]   e_used;
    reg  [31:0]    a_left;  // rows still to receive
    reg            a_more;  // a_left != 0 while busy
    reg            a_one;   // a_left == 1
    reg            a_rdy;   // in_ready
    reg  [BW-1:0]  ai, bi, di;  // beat index within the row: A, B issue, D issue
    reg  [31:0]    d_rows;  // rows whose last beat D has issued
    wire           m_push, r_push;
    wire           d_en = !out_v || out_ready;

    // in_ready is a register, computed from the next-state values so that it equals
    // busy && (rows not all received) && s_used != SFULL every clock: the counters' compares
    // stay off the port, whose user adds its own logic behind it. a_more and a_one track
    // a_left != 0 and a_left == 1, so that the next state needs no 32-bit compare after a
    // decrement; a_more is never set while idle (t = 0 leaves the unit idle).
    assign in_ready = a_rdy;
    wire in_fire = in_valid && a_rdy;
    wire a_last = (ai == b_last);
    wire a_row_end = in_fire && a_last;
    wire a_more_next = go ? (rows != 32'd0 && t != 16'd0) : (a_row_end ? !a_one : a_more);
    wire b_issue = (m_cnt != {(SAW+1){1'b0}}) && (e_used != EFULL);
    // The score FIFO holds SFULL beats after this edge: it does and B issues none, or it is one
    // short, a beat arrives and B issues none (in_fire never happens at SFULL). go empties it.
    wire s_full_next = !go && !b_issue &&
                       ((s_used == SFULL) || (in_fire && s_used == SFULL - 1'b1));
    wire b_lastb = (bi == b_last);
    wire d_issue = d_en && (r_cnt != {(EAW+1){1'b0}});
    wire d_lastb = (di == b_last);

    always @(posedge clk) begin
        if (!rst_n) begin
            a_left <= 32'd0;
            a_more <= 1'b0;
            a_one <= 1'b0;
            a_rdy <= 1'b0;
        end else begin
            a_more <= a_more_next;
            a_rdy <= a_more_next && !s_full_next;
            if (go) begin
                a_left <= rows;
                a_one <= (rows == 32'd1);
            end else if (a_row_end) begin
                a_left <= a_left - 32'd1;
                a_one <= (a_left == 32'd2);
            end
        end
    end
    always @(posedge clk) begin
        if (!rst_n || go) begin
            e_used <= 0;
            d_rows <= 32'd0;
            ai <= 0; bi <= 0; di <= 0;
        end else begin
            if (in_fire) ai <= a_last ? {BW{1'b0}} : ai + 1'b1;
            if (b_issue) bi <= b_lastb ? {BW{1'b0}} : bi + 1'b1;
            if (d_issue) begin
                di <= d_lastb ? {BW{1'b0}} : di + 1'b1;
                if (d_lastb) d_rows <= d_rows + 32'd1;
            end
            e_used <= e_used + {{EAW{1'b0}}, b_issue} - {{EAW{1'b0}}, d_issue};
        end
    end

    // ------------------------------------------------------------------------------------------
    // Stage A: scores into the score FIFO; the row maximum. Masked lanes enter the tree as
    // -2^31, so they never win over lane 0, which is always valid.
    wire [L*32-1:0] s_head;
    vitfpga_fifo #(.WIDTH(L*32), .DEPTH(SDEPTH)) u_sbuf (
        .clk(clk), .rst_n(rst_n), .clr(go), .push(in_fire), .wdata(in_data), .pop(b_issue),
        .head(s_head), .count(s_used));

    // Max tree, heap-numbered: node n (1 .. 2L-1) has children 2n and 2n+1, leaves are L..2L-1
    // (lane j at node L+j); every node is a register, so the root lags the leaves LT clocks.
    reg  [64*L-1:32] mt;  // node 0 does not exist
    /* verilator lint_off UNUSEDSIGNAL */
    reg  [LT+1:0]   av;   // valid along the tree: [0] at the leaves, [LT] at the root
    reg  [LT+1:0]   af;   // the beat is its row's first
    reg  [LT+1:0]   al;   // the beat is its row's last
    /* verilator lint_on UNUSEDSIGNAL */
    wire [L-1:0]    a_mask = a_last ? mask_last : {L{1'b1}};
    generate
        for (gj = 0; gj < L; gj = gj + 1) begin : a_leaf
            always @(posedge clk) begin
                mt[32*(L+gj) +: 32] <= a_mask[gj] ? in_data[32*gj +: 32] : 32'h80000000;
            end
        end
        for (gj = 1; gj < L; gj = gj + 1) begin : a_node
            wire signed [31:0] x0 = mt[32*(2*gj) +: 32];
            wire signed [31:0] x1 = mt[32*(2*gj+1) +: 32];
            always @(posedge clk) mt[32*gj +: 32] <= (x1 > x0) ? x1 : x0;
        end
    endgenerate
    always @(posedge clk) begin
        if (!rst_n) av <= 0;
        else av <= {av[LT:0], in_fire};
        af <= {af[LT:0], ai == {BW{1'b0}}};
        al <= {al[LT:0], a_last};
    end
    wire signed [31:0] root = mt[32 +: 32];
    reg  signed [31:0] amax;
    wire signed [31:0] amax_next = (af[LT] || root > amax) ? root : amax;
    assign m_push = av[LT] && al[LT];
    always @(posedge clk) begin
        if (av[LT]) amax <= amax_next;
    end
    wire [31:0] m_head;
    vitfpga_fifo #(.WIDTH(32), .DEPTH(SDEPTH)) u_mfifo (
        .clk(clk), .rst_n(rst_n), .clr(go), .push(m_push), .wdata(amax_next),
        .pop(b_issue && b_lastb), .head(m_head), .count(m_cnt));

    // ------------------------------------------------------------------------------------------
    // Stage B, free running (B issues only with e FIFO credit, so nothing downstream waits):
    //   1  score beat read; the row's maximum (the max FIFO's head, popped with the last beat)
    //   2  d = max - s
    //   3  d*M as four registered partial products (17 x 26, 15 x 26, 17 x 5, 15 x 5 bits: a
    //      DSP48 each)                     4, 5  their sum in two steps of short adds
    //   6  >> 8*((S-1) >> 3): 22 bits kept and whether any higher bit is set
    //   7  >> (S-1) & 7: 15 bits and the flag y >= 2^15
    //   8  u = (y + 1) >> 1 = (d*M + 2^(S-1)) >> S; whole = min(u >> 8, 62); ROM index u & 255
    //   9  ROM read                    10  e = lut >> whole, masked; into the e FIFO
    reg  [9:1]      bv;   // valid per stage
    reg  [9:1]      bl;   // the row's last beat
    reg  [L*32-1:0] s1;
    reg  signed [31:0] mx1;
    wire [L*23-1:0] e10c;  // e of every lane, stage 10's input
    wire [8*L-1:0]  idx8v; // ROM index per lane, stage 8
    reg  [23*L-1:0] lut9v; // ROM word per lane, stage 9
    wire [L-1:0]    b_mask = bl[9] ? mask_last : {L{1'b1}};
    always @(posedge clk) begin
        if (!rst_n) bv <= 9'd0;
        else bv <= {bv[8:1], b_issue};
        bl <= {bl[8:1], b_lastb};
        s1 <= s_head;
        mx1 <= m_head;
    end
    generate
        for (gj = 0; gj < L; gj = gj + 1) begin : b_lane
            reg [31:0] d2;
            reg [42:0] pp00;  // d[16:0] * M[25:0]: each partial product fits one DSP48
            reg [40:0] pp10;  // d[31:17] * M[25:0]
            reg [21:0] pp01;  // d[16:0] * M[30:26]
            reg [19:0] pp11;  // d[31:17] * M[30:26]
            reg [58:0] a4;    // pp00 + pp10 << 17
            reg [37:0] b4;    // pp01 + pp11 << 17
            reg [62:0] p5;    // d*M = a4 + b4 << 26
            reg [21:0] x6;
            reg        h6;
            reg [14:0] y7;
            reg        h7;
            reg [7:0]  idx8;
            reg [5:0]  wh8, wh9;
            wire [22:0] lut9 = lut9v[23*gj +: 23];
            /* verilator lint_off UNUSEDSIGNAL */
            wire [41:0] a4h = {16'd0, pp00[42:17]} + {1'b0, pp10};
            wire [20:0] b4h = {16'd0, pp01[21:17]} + {1'b0, pp11};
            wire [37:0] p5h = {5'd0, a4[58:26]} + b4;
            /* verilator lint_on UNUSEDSIGNAL */
            wire [62:0] pc = p5 >> {sm1_q[5:3], 3'b000};
            wire [21:0] pf = x6 >> sm1_q[2:0];
            /* verilator lint_off UNUSEDSIGNAL */
            wire [15:0] u2 = {1'b0, y7} + 16'd1;  // 2u or 2u + 1: bit 0 is dropped
            /* verilator lint_on UNUSEDSIGNAL */
            wire        big = h7 || u2[15] || (u2[14:9] >= 6'd62);
            wire [22:0] ex = lut9 >> wh9;
            assign idx8v[8*gj +: 8] = idx8;
            assign e10c[23*gj +: 23] = b_mask[gj] ? ex : 23'd0;
            always @(posedge clk) begin
                d2 <= mx1 - s1[32*gj +: 32];  // max >= s: the 32-bit difference is exact
                pp00 <= d2[16:0] * m_q[25:0];
                pp10 <= d2[31:17] * m_q[25:0];
                pp01 <= d2[16:0] * m_q[30:26];
                pp11 <= d2[31:17] * m_q[30:26];
                // The partial sums add only where the operands overlap (no 63-bit carry chain).
                a4 <= {a4h[41:0], pp00[16:0]};
                b4 <= {b4h[20:0], pp01[16:0]};
                p5 <= {p5h[36:0], a4[25:0]};  // d*M < 2^63
                x6 <= pc[21:0];
                h6 <= |pc[62:22];
                y7 <= pf[14:0];
                h7 <= h6 || (|pf[21:15]);
                idx8 <= u2[8:1];
                wh8 <= big ? 6'd62 : u2[14:9];
                wh9 <= wh8;
            end
        end
    endgenerate
    // The exp ROM, one copy per pair of lanes: two read ports a copy, as a dual-port block RAM
    // has (one array read by all L lanes is more than Yosys' memory mapping copes with at L=32).
    // EXP_BLOCK puts it in block RAM by attribute: left to synthesis, the 256-word table can
    // become a chain of LUTs deeper than a 250 MHz clock allows (docs/vit.md "Timing").
    generate
        for (gj = 0; gj < L; gj = gj + 2) begin : rom
            if (EXP_BLOCK != 0) begin : g_block
                (* rom_style = "block" *) reg [22:0] lut [0:255];
                initial $readmemh(EXP_FILE, lut);
                always @(posedge clk) lut9v[23*gj +: 23] <= lut[idx8v[8*gj +: 8]];
                if (gj + 1 < L) begin : second
                    always @(posedge clk) lut9v[23*(gj+1) +: 23] <= lut[idx8v[8*(gj+1) +: 8]];
                end
            end else begin : g_auto
                reg [22:0] lut [0:255];
                initial $readmemh(EXP_FILE, lut);
                always @(posedge clk) lut9v[23*gj +: 23] <= lut[idx8v[8*gj +: 8]];
                if (gj + 1 < L) begin : second
                    always @(posedge clk) lut9v[23*(gj+1) +: 23] <= lut[idx8v[8*(gj+1) +: 8]];
                end
            end
        end
    endgenerate
    wire [L*23-1:0] e_head;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [EAW:0]    e_held;  // e_used (B's credit) counts from the issue instead
    /* verilator lint_on UNUSEDSIGNAL */
    vitfpga_fifo #(.WIDTH(L*23), .DEPTH(EDEPTH)) u_ebuf (
        .clk(clk), .rst_n(rst_n), .clr(go), .push(bv[9]), .wdata(e10c), .pop(d_issue),
        .head(e_head), .count(e_held));

    // Sum tree over the lanes' e, heap-numbered like the max tree, then the running row sum.
    reg  [2*L*TW-1:TW] st;
    /* verilator lint_off UNUSEDSIGNAL */
    reg  [LT+1:0]     sv;  // valid along the tree: [0] at the leaves (stage 10), [LT] at the root
    reg  [LT+1:0]     sf;  // first beat of a row
    reg  [LT+1:0]     sl;  // last beat of a row
    /* verilator lint_on UNUSEDSIGNAL */
    reg               b_first;
    generate
        for (gj = 0; gj < L; gj = gj + 1) begin : s_leaf
            always @(posedge clk) st[TW*(L+gj) +: TW] <= {{LT{1'b0}}, e10c[23*gj +: 23]};
        end
        for (gj = 1; gj < L; gj = gj + 1) begin : s_node
            always @(posedge clk)
                st[TW*gj +: TW] <= st[TW*(2*gj) +: TW] + st[TW*(2*gj+1) +: TW];
        end
    endgenerate
    /* verilator lint_off UNUSEDSIGNAL */
    /* verilator lint_on UNUSEDSIGNAL */
    // b_first: the beat entering stage 10 is its row's first (the previous one was a last).
    always @(posedge clk) begin
        if (!rst_n || go) b_first <= 1'b1;
        else if (bv[9]) b_first <= bl[9];
    end
    always @(posedge clk) begin
        if (!rst_n) sv <= 0;
        else sv <= {sv[LT:0], bv[9]};
        sf <= {sf[LT:0], b_first};
        sl <= {sl[LT:0], bl[9]};
    end
    reg  [SUMW-1:0] acc;
    /* verilator lint_off WIDTHEXPAND */
    wire [SUMW-1:0] sum_next = (sf[LT] ? {SUMW{1'b0}} : acc) + st[TW +: TW];  // < t * 2^23
    /* verilator lint_on WIDTHEXPAND */
    wire            dv_in = sv[LT] && sl[LT];
    always @(posedge clk) begin
        if (sv[LT]) acc <= sum_next;
    end

    // ------------------------------------------------------------------------------------------
    // Divider: 2^40 // sum, restoring, one quotient bit per stage, QW stages in a pipeline.
    // sum >= 2^21, so the quotient's bits 40..20 are zero and the remainder after them is 2^20.
    // Stage 0 holds the operand; stage k (1..QW) holds the remainder after quotient bit QW-k.
    reg  [(QW+1)*SUMW-1:0] dden, drem;
    reg  [(QW+1)*QW-1:0]   dquo;
    reg  [QW:0]            dval;
    reg  [RPW-1:0]         res;
    reg                    res_v;
    always @(posedge clk) begin
        if (!rst_n) dval[0] <= 1'b0;
        else dval[0] <= dv_in;
        dden[SUMW-1:0] <= sum_next;
        drem[SUMW-1:0] <= REM0;
        dquo[QW-1:0] <= {QW{1'b0}};
    end
    generate
        for (gj = 1; gj <= QW; gj = gj + 1) begin : dv_stage
            wire [SUMW-1:0] den = dden[SUMW*(gj-1) +: SUMW];
            wire [SUMW:0]   r1 = {drem[SUMW*(gj-1) +: SUMW], 1'b0};
            wire            ge = (r1 >= {1'b0, den});
            /* verilator lint_off UNUSEDSIGNAL */
            wire [SUMW:0]   r1s = r1 - {1'b0, den};  // < den when taken: the top bit is zero
            wire [QW-1:0]   q0 = dquo[QW*(gj-1) +: QW];
            /* verilator lint_on UNUSEDSIGNAL */
            always @(posedge clk) begin
                if (!rst_n) dval[gj] <= 1'b0;
                else dval[gj] <= dval[gj-1];
                dden[SUMW*gj +: SUMW] <= den;
                drem[SUMW*gj +: SUMW] <= ge ? r1s[SUMW-1:0] : r1[SUMW-1:0];
                dquo[QW*gj +: QW] <= {q0[QW-2:0], ge};
            end
        end
    endgenerate
    /* verilator lint_off UNUSEDSIGNAL */
    wire [SUMW-1:0] drem_unused = drem[SUMW*QW +: SUMW];
    wire [SUMW-1:0] dden_unused = dden[SUMW*QW +: SUMW];
    /* verilator lint_on UNUSEDSIGNAL */
    always @(posedge clk) begin
        if (!rst_n) res_v <= 1'b0;
        else res_v <= dval[QW];
        res <= dquo[QW*QW +: QW] * pm_q;
    end
    assign r_push = res_v;
    wire [RPW-1:0] r_head;
    vitfpga_fifo #(.WIDTH(RPW), .DEPTH(EDEPTH)) u_rfifo (
        .clk(clk), .rst_n(rst_n), .clr(go), .push(r_push), .wdata(res),
        .pop(d_issue && d_lastb), .head(r_head), .count(r_cnt));

    // ------------------------------------------------------------------------------------------
    // Stage D (one enable `d_en`, low only while an output is held back by out_ready):
    //   1  e beat read; the row's recip*prob_max (the recip FIFO's head, popped with the last
    //      beat)
    //   2  e * recip*prob_max as two registered partial products (17 x 26 and 6 x 26 bits, a
    //      DSP48 each)                  3  their sum, bits 39 up
    //   4  round, >> 40 -> output register
    reg           vd1, vd2, vd3;
    reg           tl1, tl2, tl3;
    reg [L*23-1:0] e1;
    reg [RPW-1:0] rp1;
    reg [L*8-1:0] p_out;
    always @(posedge clk) begin
        if (!rst_n) begin
            vd1 <= 1'b0;
            vd2 <= 1'b0;
            vd3 <= 1'b0;
            out_v <= 1'b0;
        end else if (d_en) begin
            vd1 <= d_issue;
            vd2 <= vd1;
            vd3 <= vd2;
            out_v <= vd3;
        end
    end
    always @(posedge clk) begin
        if (d_en) begin
            e1 <= e_head;
            rp1 <= r_head;
            tl1 <= d_issue && d_lastb && (d_rows == rows_m1);
            tl2 <= tl1;
            tl3 <= tl2;
            out_last <= tl3;
        end
    end
    generate
        for (gj = 0; gj < L; gj = gj + 1) begin : d_lane
            reg  [PW-40:0]  m3;  // the product's bits from 39 up: all that the rounding reads
            /* verilator lint_off UNUSEDSIGNAL */
            reg  [RPW+16:0] ql;  // e[16:0] * rp (bits 16..0 carry nothing into bit 39)
            reg  [RPW+5:0]  qh;  // e[22:17] * rp
            wire [PW-18:0]  hi = {6'd0, ql[RPW+16:17]} + qh;  // the product's bits from 17 up
            wire [PW-40:0]  rnd_hi = m3 + 1'b1;  // (m + 2^39) >> 40 = (m[..:39] + 1) >> 1
            /* verilator lint_on UNUSEDSIGNAL */
            always @(posedge clk) begin
                if (d_en) begin
                    ql <= e1[23*gj +: 17] * rp1;
                    qh <= e1[23*gj+17 +: 6] * rp1;
                    m3 <= hi[PW-18:22];
                    p_out[8*gj +: 8] <= rnd_hi[8:1];  // e*recip <= 2^40: at most prob_max
                end
            end
        end
    endgenerate
    assign out_data = p_out;
endmodule
