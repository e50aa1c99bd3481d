`timescale 1ns/1ps
// Integer softmax unit: `vitfpga.runtime.intmath.int_softmax` over rows of t int32 scores, bit
// exact. Per row (lut = the EXP_FILE ROM, 256 entries below 2^23):
//   d     = max(row) - s                          (0 .. 2^32-1, so the golden min() never acts)
//   u     = (d*M + 2^(S-1)) >> S                  (exact: d*M < 2^63, no int64 wrap)
//   e     = lut[u & 255] >> min(u >> 8, 62)
//   recip = 2^40 // sum(e)                        (once per row)
//   p     = (e * (recip*prob_max) + 2^39) >> 40   (0 .. prob_max)
//
// Three phases per row, each one element per clock, over two-bank row buffers, so that three
// consecutive rows are in flight at once:
//   A  input: scores into score bank r%2, running max.                          (t cycles)
//   B  exponent: read the row back, d, u, ROM look-up, e into e bank r%2, row   (t + 7)
//      sum; the sum goes to the divider.
//   D  2^40 // sum (radix 4: ten steps) times prob_max (one more clock), then   (11 + 1)
//      the e bank is read back and each e scaled to a probability.            (t + 4)
// A score bank is handed from A to B whole (a full flag per bank); B starts a row the clock
// after its last score arrived and releases the bank with its last read, just in time for A to
// write the row after next into it. The e banks are shared finer: while D still reads row r-2
// from a bank, B may already write element i of row r into it once D has read element i. That
// slack is what hides the division: B of row r+1 runs while D waits for recip(r). The divider
// keeps its result in a register of its own until D takes it, so it can divide row r+1 while D
// still outputs row r.
//
// Timing (rows R, input always valid, output always ready; cycles counted from the clock edge
// that takes `start` to the edge that raises `done`, measured by tests/sim/test_softmax_unit.py):
//   t >= 13:  R*t + 2*t + 23 exactly. Latency 2*t + 23: a row's max is known only after its
//             last score, so phases A, B and D of one row cannot overlap.
//   t <  13:  the division paces the rows, one every 12 clocks (a row's last e waits for the
//             divider to be free): (R-1)*12 + 3*t + 23 for t <= 11, at most R*13 + 2*t + 23.
// Backpressure (out_ready low) stalls D; B and A follow as their buffers fill.
//
// Resources: one 32x31 multiplier (d*M), one 23x27 multiplier (e * recip*prob_max), one 20x7
// multiplier used once per row, one 256 x 23 ROM, row buffers 2 x 2^ceil(log2 TMAX) deep of 32
// (scores) and 23 bits (e), a radix-4 restoring divider (two subtractors of 24 + log2 TMAX
// bits). Yosys synth_xilinx at TMAX = 256 (xc7): 2 RAMB18, 9 DSP48E1, about 1000 LUTs (the
// ROM among them) and 620 flip-flops.
//
// Assumptions beyond the port list: t <= TMAX (a larger t wraps the row buffers), lut[0] >
// 2^20 (true for intmath.EXP2_LUT, lut[0] = 2^22: the row's maximum contributes lut[0] to the
// sum, so 2^40 // sum < 2^20 fits the 20-bit quotient), and d*M + 2^(S-1) < 2^63 for every
// element (where int_softmax's int64 arithmetic would wrap; this unit computes it exactly).
// t = 0, like rows = 0, finishes at once.
module vitfpga_softmax #(
    parameter integer TMAX = 32,            // longest row (row buffers hold TMAX elements)
    parameter EXP_FILE = "exp2_lut.mem"     // $readmemh, 256 lines, unsigned value < 2^23
) (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        start,      // one-cycle pulse, honoured only while idle; latches t..prob_max
    input  wire [15:0] t,          // row length (tokens), 1..TMAX
    input  wire [31:0] rows,       // rows; 0 finishes at once (done pulse)
    input  wire [31:0] mult,       // M of the score rescale, < 2^31
    input  wire [7:0]  shift,      // S in [1, 62]
    input  wire [7:0]  prob_max,   // 1..127
    output wire        idle,
    output reg         done,       // one-cycle pulse once the final output element was accepted
    input  wire [31:0] in_data,    // int32 score, rows back to back
    input  wire        in_valid,
    output wire        in_ready,
    output wire [7:0]  out_data,   // probability 0..prob_max (unsigned), same order
    output wire        out_valid,
    input  wire        out_ready
);
    localparam integer IW = (TMAX > 1) ? $clog2(TMAX) : 1;  // element index within a row
    localparam integer SUMW = 23 + ((TMAX > 1) ? $clog2(TMAX) : 0);  // row sum, exact
    localparam integer QW = 20;  // 2^40 // sum with sum > 2^20
    localparam integer RPW = QW + 7;  // recip * prob_max
    localparam integer PW = 23 + RPW;  // e * recip * prob_max
    localparam [SUMW-1:0] REM0 = 1 << (40 - QW);  // the remainder after the quotient's zero bits

    // ------------------------------------------------------------------------------------------
    // Memories: plain arrays so that synthesis infers block RAM / ROM. Both row buffers are
    // simple dual port (one writer, one reader), addressed {bank, index}.
    reg [22:0] lut [0:255];
    initial $readmemh(EXP_FILE, lut);
    reg [31:0] sbuf [0:(2 << IW)-1];  // scores
    reg [22:0] ebuf [0:(2 << IW)-1];  // exponentials

    // ------------------------------------------------------------------------------------------
    // Run control. The run's parameters are latched at start; the inputs may change afterwards.
    reg          busy;
    reg [31:0]   rows_q;
    reg [31:0]   rows_m1;  // rows - 1
    reg [IW-1:0] t_last;  // t - 1
    reg [30:0]   m_q;
    reg [5:0]    sm1_q;   // S - 1
    reg [6:0]    pm_q;
    wire go = start && !busy;
    assign idle = !busy;

    /* verilator lint_off UNUSEDSIGNAL */
    wire [15:0] t_m1 = t - 16'd1;
    wire        unused_ok = &{mult[31], shift[7:6], prob_max[7]};  // zero by the contract
    /* verilator lint_on UNUSEDSIGNAL */
    always @(posedge clk) begin
        if (go) begin
            rows_q <= rows;
            rows_m1 <= rows - 32'd1;
            t_last <= t_m1[IW-1:0];
            m_q <= mult[30:0];
            sm1_q <= shift[5:0] - 6'd1;
            pm_q <= prob_max[6:0];
        end
    end

    reg  out_last;  // the output register holds the run's final element
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
    // Phase A: scores into score bank `wa`, running maximum. A bank is free to write while its
    // full flag is clear; the flag is set with the row's last score and cleared by B's last read.
    reg  [1:0]        sfull;
    reg               wa;
    reg  [IW-1:0]     ia;
    reg  [31:0]       a_rows;  // rows received
    reg  signed [31:0] amax;
    reg  signed [31:0] rmax0, rmax1;  // the maximum of the row in each score bank
    wire              a_room = wa ? !sfull[1] : !sfull[0];
    assign in_ready = busy && (a_rows != rows_q) && a_room;
    wire              in_fire = in_valid && in_ready;
    wire              ia_last = (ia == t_last);
    wire signed [31:0] din = in_data;
    wire signed [31:0] amax_next = (ia == {IW{1'b0}} || din > amax) ? din : amax;

    always @(posedge clk) begin
        if (in_fire) sbuf[{wa, ia}] <= in_data;
    end
    always @(posedge clk) begin
        if (in_fire) begin
            amax <= amax_next;
            if (ia_last) begin
                if (wa) rmax1 <= amax_next;
                else rmax0 <= amax_next;
            end
        end
    end

    // Phase B issue state, declared here because its last read releases a score bank.
    reg          rb;
    reg [IW-1:0] ib;
    wire         b_en;  // B pipeline enable: low only while its write stage must wait
    wire         b_can = rb ? sfull[1] : sfull[0];
    wire         b_issue = b_en && b_can;
    wire         ib_last = (ib == t_last);

    // A sets the flag of a bank that is clear and B clears one that is set, so the two updates
    // below never touch the same bank in the same cycle.
    always @(posedge clk) begin
        if (!rst_n || go) begin
            sfull <= 2'b00;
            wa <= 1'b0;
            ia <= {IW{1'b0}};
            a_rows <= 32'd0;
            rb <= 1'b0;
            ib <= {IW{1'b0}};
        end else begin
            if (in_fire) begin
                ia <= ia_last ? {IW{1'b0}} : ia + 1'b1;
                if (ia_last) begin
                    wa <= !wa;
                    a_rows <= a_rows + 32'd1;
                    if (wa) sfull[1] <= 1'b1;
                    else sfull[0] <= 1'b1;
                end
            end
            if (b_issue) begin
                ib <= ib_last ? {IW{1'b0}} : ib + 1'b1;
                if (ib_last) begin
                    rb <= !rb;
                    if (rb) sfull[1] <= 1'b0;
                    else sfull[0] <= 1'b0;
                end
            end
        end
    end

    // ------------------------------------------------------------------------------------------
    // Phase B pipeline, one enable `b_en` for every stage (block RAM and DSP clock enables):
    //   1  score read; the row's maximum rides along (A may overwrite rmax once the bank is free)
    //   2  d = max - s
    //   3  d*M
    //   4  y = d*M >> (S-1) in two steps, first by 8*((S-1) >> 3): 22 bits kept, and whether
    //   5  any higher bit is set; then by (S-1) & 7: 15 bits and the flag y >= 2^15
    //   6  u = (y + 1) >> 1, which is (d*M + 2^(S-1)) >> S without a 64-bit adder;
    //      whole = min(u >> 8, 62) (u >= 2^14 is y >= 2^15 - 1); ROM read at u & 255
    //   7  e = lut >> whole
    // then the write stage: e into the e bank, row sum, divider start after the last element.
    reg v1, v2, v3, v4, v5, v6, v7;
    reg [31:0] s1;
    reg signed [31:0] mx1;
    reg [31:0] d2;
    reg [62:0] p3;
    reg [21:0] x4;
    reg        h4;
    reg [14:0] y5;
    reg        h5;
    reg [22:0] lut6;
    reg [5:0]  wh6;
    reg [22:0] e7;

    wire [62:0] pc = p3 >> {sm1_q[5:3], 3'b000};
    wire [21:0] pf = x4 >> sm1_q[2:0];
    /* verilator lint_off UNUSEDSIGNAL */
    wire [15:0] u2 = {1'b0, y5} + 16'd1;  // 2u or 2u + 1: bit 0 is dropped
    /* verilator lint_on UNUSEDSIGNAL */
    wire        big = h5 || u2[15] || (u2[14:9] >= 6'd62);
    wire [5:0]  whole = big ? 6'd62 : u2[14:9];

    always @(posedge clk) begin
        if (!rst_n) begin
            v1 <= 1'b0;
            v2 <= 1'b0;
            v3 <= 1'b0;
            v4 <= 1'b0;
            v5 <= 1'b0;
            v6 <= 1'b0;
            v7 <= 1'b0;
        end else if (b_en) begin
            v1 <= b_can;
            v2 <= v1;
            v3 <= v2;
            v4 <= v3;
            v5 <= v4;
            v6 <= v5;
            v7 <= v6;
        end
    end

    always @(posedge clk) begin
        if (b_en) begin
            s1 <= sbuf[{rb, ib}];
            mx1 <= rb ? rmax1 : rmax0;
            d2 <= mx1 - s1;  // max >= s: the 32-bit difference is exact, unsigned
            p3 <= d2 * m_q;
            x4 <= pc[21:0];
            h4 <= |pc[62:22];
            y5 <= pf[14:0];
            h5 <= h4 || (|pf[21:15]);
            lut6 <= lut[u2[8:1]];
            wh6 <= whole;
            e7 <= lut6 >> wh6;
        end
    end

    // ------------------------------------------------------------------------------------------
    // B write stage. Element wi of row r goes to e bank wb. That bank may still hold row r-2
    // (its full flag set) that D is reading: the write waits until D has read element wi of it.
    // A row's last element also waits for the divider to be free.
    reg  [1:0]         efull;
    reg                wb;
    reg  [IW-1:0]      wi;
    reg  [SUMW-1:0]    acc;
    reg                d_act;  // D state, below
    reg                d_bank;
    reg  [IW-1:0]      id;
    reg                dv_run;
    wire               wi_last = (wi == t_last);
    wire               wb_full = wb ? efull[1] : efull[0];
    wire               bank_ok = !wb_full || (d_act && d_bank == wb && id > wi);
    wire               wr_ok = bank_ok && (!wi_last || !dv_run);
    assign b_en = !v7 || wr_ok;
    wire               b_wr = v7 && wr_ok;
    wire               dv_start = b_wr && wi_last;
    /* verilator lint_off WIDTHEXPAND */
    wire [SUMW-1:0]    sum_next = acc + e7;  // < t * 2^23: no overflow
    /* verilator lint_on WIDTHEXPAND */

    always @(posedge clk) begin
        if (b_wr) ebuf[{wb, wi}] <= e7;
    end

    wire d_issue;
    wire id_last = (id == t_last);
    wire d_row_end = d_issue && id_last;

    // B sets the flag of a clear bank (the chase above never lets it finish a row in a bank D
    // still reads) and D clears the flag of its own bank: never the same bank in one cycle.
    always @(posedge clk) begin
        if (!rst_n || go) begin
            efull <= 2'b00;
            wb <= 1'b0;
            wi <= {IW{1'b0}};
            acc <= {SUMW{1'b0}};
        end else begin
            if (b_wr) begin
                wi <= wi_last ? {IW{1'b0}} : wi + 1'b1;
                acc <= wi_last ? {SUMW{1'b0}} : sum_next;
                if (wi_last) begin
                    wb <= !wb;
                    if (wb) efull[1] <= 1'b1;
                    else efull[0] <= 1'b1;
                end
            end
            if (d_row_end) begin
                if (d_bank) efull[1] <= 1'b0;
                else efull[0] <= 1'b0;
            end
        end
    end

    // ------------------------------------------------------------------------------------------
    // Divider: 2^40 // sum, restoring, two quotient bits a clock. sum > 2^20 (it includes lut[0]
    // of the row's maximum), so the quotient's bits 40..20 are zero and the remainder after them
    // is 2^20; ten steps give bits 19..0. An eleventh clock multiplies by prob_max into `res`,
    // which holds the value until D takes it. (The divider would wait there if D had not taken
    // the previous row's yet; the e-bank chase already keeps D that far ahead, so it never does.)
    reg  [SUMW-1:0] den, rem;
    reg  [QW-1:0]   quo;
    reg  [3:0]      dv_cnt;
    reg  [RPW-1:0]  res;
    reg             res_v;
    wire            d_take;
    wire [SUMW:0]   r1 = {rem, 1'b0};
    wire            ge1 = (r1 >= {1'b0, den});
    /* verilator lint_off UNUSEDSIGNAL */
    wire [SUMW:0]   r1s = r1 - {1'b0, den};  // < den when taken: the top bit is zero
    wire [SUMW-1:0] rem1 = ge1 ? r1s[SUMW-1:0] : r1[SUMW-1:0];  // < den either way
    wire [SUMW:0]   r2 = {rem1, 1'b0};
    wire            ge2 = (r2 >= {1'b0, den});
    wire [SUMW:0]   r2s = r2 - {1'b0, den};
    /* verilator lint_on UNUSEDSIGNAL */
    wire [SUMW-1:0] rem2 = ge2 ? r2s[SUMW-1:0] : r2[SUMW-1:0];
    wire            dv_fin = dv_run && (dv_cnt == 4'd10);
    wire            dv_put = dv_fin && (!res_v || d_take);

    always @(posedge clk) begin
        if (dv_start) begin
            den <= sum_next;
            rem <= REM0;
            dv_cnt <= 4'd0;
        end else if (dv_run && !dv_fin) begin
            rem <= rem2;
            quo <= {quo[QW-3:0], ge1, ge2};
            dv_cnt <= dv_cnt + 4'd1;
        end
        if (dv_put) res <= quo * pm_q;
    end
    always @(posedge clk) begin
        if (!rst_n || go) begin
            dv_run <= 1'b0;
            res_v <= 1'b0;
        end else begin
            if (dv_start) dv_run <= 1'b1;
            else if (dv_put) dv_run <= 1'b0;
            if (dv_put) res_v <= 1'b1;
            else if (d_take) res_v <= 1'b0;
        end
    end

    // ------------------------------------------------------------------------------------------
    // Phase D: read the e bank of the current row, one element a clock. The next row's
    // recip*prob_max is taken with the last read, so rows follow without a gap when it is ready.
    // Pipeline (one enable `d_en` for every stage; it drops only while an output is held back
    // by out_ready, so nothing is lost or duplicated under backpressure):
    //   1  e bank read; recip*prob_max of the row rides along
    //   2  e * recip*prob_max
    //   3  (a second product register for the multiplier's pipeline)
    //   4  round, >> 40 -> output register
    reg  [RPW-1:0] d_rp;
    reg  [31:0]    d_rows;  // rows whose last element D has read
    wire           d_en = !out_v || out_ready;
    assign d_issue = d_act && d_en;
    assign d_take = res_v && (!d_act || d_row_end);

    always @(posedge clk) begin
        if (!rst_n || go) begin
            d_act <= 1'b0;
            d_bank <= 1'b0;
            id <= {IW{1'b0}};
            d_rows <= 32'd0;
        end else begin
            if (d_issue) begin
                id <= id_last ? {IW{1'b0}} : id + 1'b1;
                if (id_last) begin
                    d_bank <= !d_bank;
                    d_rows <= d_rows + 32'd1;
                end
            end
            if (d_take) d_act <= 1'b1;
            else if (d_row_end) d_act <= 1'b0;
        end
    end
    always @(posedge clk) begin
        if (d_take) d_rp <= res;
    end

    reg           vd1, vd2, vd3;
    reg           tl1, tl2, tl3;
    reg [22:0]    e1;
    reg [RPW-1:0] rp1;
    reg [PW-40:0] m2, m3;  // the product's bits from 39 up: all that the rounding reads
    reg [7:0]     p_out;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [PW-1:0]  prod = e1 * rp1;
    wire [PW-40:0] rnd_hi = m3 + 1'b1;  // (m + 2^39) >> 40 = (m[..:39] + 1) >> 1
    /* verilator lint_on UNUSEDSIGNAL */
    always @(posedge clk) begin
        if (!rst_n) begin
            vd1 <= 1'b0;
            vd2 <= 1'b0;
            vd3 <= 1'b0;
            out_v <= 1'b0;
        end else if (d_en) begin
            vd1 <= d_act;
            vd2 <= vd1;
            vd3 <= vd2;
            out_v <= vd3;
        end
    end
    always @(posedge clk) begin
        if (d_en) begin
            e1 <= ebuf[{d_bank, id}];
            rp1 <= d_rp;
            tl1 <= id_last && (d_rows == rows_m1);
            m2 <= prod[PW-1:39];
            tl2 <= tl1;
            m3 <= m2;
            tl3 <= tl2;
            p_out <= rnd_hi[8:1];  // e*recip <= 2^40: the result is at most prob_max
            out_last <= tl3;
        end
    end
    assign out_data = p_out;
endmodule
