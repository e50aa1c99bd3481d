`timescale 1ns/1ps
// Matrix-vector unit for one quantised linear layer (docs/engine.md).
//
// Per input row x[0..K-1] (int8) and output channel n:
//   acc = bias[n] + sum_k x[k]*w[n][k]                       (int32)
//   y   = clamp((acc*M[n] + 2^(S[n]-1)) >>> S[n], LO, 127)     (int64, LO = 0 with ReLU else -128)
//
// Folding: PE output channels x SIMD input lanes per clock. The weight ROM is read in its storage
// order (word nf*SF + sf), one word per clock, so it needs only an incrementing address.
//
// Input rows land in a two-bank buffer. A bank counts the beats written into it; the compute side
// may read beat sf of its bank as soon as that beat has arrived, so the first output fold (nf = 0)
// of a row overlaps its own arrival, and the next row streams into the other bank while this
// row's remaining folds are computed. A bank is handed back to the writer on the row's last read.
//
// Pipeline (one enable `en` for every stage; it drops only while an output beat is held back by
// m_axis TREADY, so nothing is lost or duplicated under backpressure):
//   A  weight ROM word + input buffer word (synchronous reads)
//   B  PE x SIMD products (registered, DSP/LUT multipliers)
//   C  per-PE adder tree over SIMD lanes; bias table read
//   D  per-PE int32 accumulator; M and S table reads
//   E  acc * M in int64
//   F  round, arithmetic shift, clamp -> output register (m_axis TDATA/TVALID)
module vitfpga_mvu #(
    parameter integer K = 32,
    parameter integer N = 64,
    parameter integer PE = 4,
    parameter integer SIMD = 8,
    parameter integer WBITS = 4,
    parameter integer RELU = 0,
    parameter WEIGHT_FILE = "weights.mem",
    parameter BIAS_FILE = "bias.mem",
    parameter MULT_FILE = "mult.mem",
    parameter SHIFT_FILE = "shift.mem"
) (
    input  wire              clk,
    input  wire              rst_n,
    // control: `start` is honoured only while idle; `done` pulses once the final beat has left
    input  wire              start,
    input  wire [31:0]       rows,
    output wire              idle,
    output reg               done,
    // input rows, SF beats of SIMD int8 lanes each
    input  wire [SIMD*8-1:0] in_data,
    input  wire              in_valid,
    output wire              in_ready,
    // output rows, NF beats of PE int8 lanes each
    output wire [PE*8-1:0]   out_data,
    output reg               out_valid,
    output reg               out_last,
    input  wire              out_ready
);
    localparam integer SF = K / SIMD;
    localparam integer NF = N / PE;
    localparam integer WDEPTH = NF * SF;
    localparam integer WW = PE * SIMD * WBITS;
    // Index widths (at least one bit so that degenerate folds still declare legal vectors).
    localparam integer SFB = (SF > 1) ? $clog2(SF) : 1;
    localparam integer CB = SFB + 1;  // beat counts run 0..SF inclusive
    localparam integer NFB = (NF > 1) ? $clog2(NF) : 1;
    localparam integer WAB = (WDEPTH > 1) ? $clog2(WDEPTH) : 1;
    localparam integer PW = WBITS + 8;  // one product, exact
    localparam integer DW = PW + ((SIMD > 1) ? $clog2(SIMD) : 0);  // one SIMD dot product, exact

    localparam integer SF_M1 = SF - 1;
    localparam integer NF_M1 = NF - 1;
    localparam integer WD_M1 = WDEPTH - 1;
    localparam [CB-1:0] SF_CB = SF[CB-1:0];
    localparam [CB-1:0] SF_LAST = SF_M1[CB-1:0];
    localparam [NFB-1:0] NF_LAST = NF_M1[NFB-1:0];
    localparam [WAB-1:0] WA_LAST = WD_M1[WAB-1:0];
    localparam signed [63:0] HI = 64'sd127;
    localparam signed [63:0] LO = (RELU != 0) ? 64'sd0 : -64'sd128;
    localparam [7:0] LO8 = (RELU != 0) ? 8'h00 : 8'h80;

    // ------------------------------------------------------------------------------------------
    // Memories: plain arrays with $readmemh so that synthesis infers block RAM / ROM.
    reg [WW-1:0] wrom [0:WDEPTH-1];
    reg [PE*32-1:0] brom [0:NF-1];
    reg [PE*32-1:0] mrom [0:NF-1];
    reg [PE*8-1:0] srom [0:NF-1];
    initial begin
        $readmemh(WEIGHT_FILE, wrom);
        $readmemh(BIAS_FILE, brom);
        $readmemh(MULT_FILE, mrom);
        $readmemh(SHIFT_FILE, srom);
    end
    // Two banks of 2^SFB beats, addressed {bank, beat}; the padding for SF not a power of two
    // buys address logic free of adders.
    reg [SIMD*8-1:0] ibuf [0:(2 << SFB)-1];

    // ------------------------------------------------------------------------------------------
    // Run control
    reg        busy;
    reg [31:0] rows_q;
    wire       go = start && !busy;
    wire       en = !out_valid || out_ready;
    assign idle = !busy;

    always @(posedge clk) begin
        if (!rst_n) begin
            busy <= 1'b0;
            done <= 1'b0;
            rows_q <= 32'd0;
        end else begin
            done <= 1'b0;
            if (go) begin
                rows_q <= rows;
                // An empty run finishes at once rather than waiting for a beat that never comes.
                if (rows == 32'd0) done <= 1'b1;
                else busy <= 1'b1;
            end else if (busy && out_valid && out_ready && out_last) begin
                busy <= 1'b0;
                done <= 1'b1;
            end
        end
    end

    // ------------------------------------------------------------------------------------------
    // Input side: fill bank `wb` beat by beat, then move to the other bank.
    reg          wb;
    reg [CB-1:0] cnt0, cnt1;  // beats present in each bank
    reg [31:0]   rows_in;
    wire [CB-1:0] cnt_wb = wb ? cnt1 : cnt0;
    wire          wb_row_end = (cnt_wb == SF_LAST);

    assign in_ready = busy && (rows_in != rows_q) && (cnt_wb != SF_CB);
    wire in_fire = in_valid && in_ready;

    always @(posedge clk) begin
        if (in_fire) ibuf[{wb, cnt_wb[SFB-1:0]}] <= in_data;
    end

    // Compute-side issue state, declared here because releasing a bank touches the counts.
    reg           rb;
    reg [CB-1:0]  i_sf;
    reg [NFB-1:0] i_nf;
    reg [WAB-1:0] i_wa;
    reg [31:0]    i_row;
    wire [CB-1:0] cnt_rb = rb ? cnt1 : cnt0;
    wire can_issue = busy && (i_row != rows_q) && (i_sf < cnt_rb);
    wire issue = en && can_issue;
    wire i_sf_last = (i_sf == SF_LAST);
    wire i_nf_last = (i_nf == NF_LAST);
    wire row_end = issue && i_sf_last && i_nf_last;

    // The writer only touches a bank that is not full and the reader only releases a full one,
    // so the two updates below never hit the same counter in the same cycle.
    always @(posedge clk) begin
        if (!rst_n || go) begin
            wb <= 1'b0;
            cnt0 <= {CB{1'b0}};
            cnt1 <= {CB{1'b0}};
            rows_in <= 32'd0;
        end else begin
            if (in_fire) begin
                if (wb) cnt1 <= cnt1 + 1'b1;
                else cnt0 <= cnt0 + 1'b1;
                if (wb_row_end) begin
                    wb <= !wb;
                    rows_in <= rows_in + 32'd1;
                end
            end
            if (row_end) begin
                if (rb) cnt1 <= {CB{1'b0}};
                else cnt0 <= {CB{1'b0}};
            end
        end
    end

    always @(posedge clk) begin
        if (!rst_n || go) begin
            rb <= 1'b0;
            i_sf <= {CB{1'b0}};
            i_nf <= {NFB{1'b0}};
            i_wa <= {WAB{1'b0}};
            i_row <= 32'd0;
        end else if (issue) begin
            i_wa <= (i_wa == WA_LAST) ? {WAB{1'b0}} : i_wa + 1'b1;
            if (i_sf_last) begin
                i_sf <= {CB{1'b0}};
                if (i_nf_last) begin
                    i_nf <= {NFB{1'b0}};
                    rb <= !rb;
                    i_row <= i_row + 32'd1;
                end else begin
                    i_nf <= i_nf + 1'b1;
                end
            end else begin
                i_sf <= i_sf + 1'b1;
            end
        end
    end

    // ------------------------------------------------------------------------------------------
    // Stage control: valid, first/last beat of a fold, fold index, last beat of the run.
    reg va, vb, vc, vd, ve;
    reg first_a, first_b, first_c;
    reg last_a, last_b, last_c;
    reg [NFB-1:0] nf_a, nf_b, nf_c;
    reg tlast_a, tlast_b, tlast_c, tlast_d, tlast_e;

    always @(posedge clk) begin
        if (!rst_n) begin
            va <= 1'b0;
            vb <= 1'b0;
            vc <= 1'b0;
            vd <= 1'b0;
            ve <= 1'b0;
            out_valid <= 1'b0;
        end else if (en) begin
            va <= can_issue;
            vb <= va;
            vc <= vb;
            vd <= vc && last_c;  // an accumulator is complete after its fold's last beat
            ve <= vd;
            out_valid <= ve;
        end
    end

    always @(posedge clk) begin
        if (en) begin
            first_a <= (i_sf == {CB{1'b0}});
            last_a <= i_sf_last;
            nf_a <= i_nf;
            tlast_a <= i_sf_last && i_nf_last && (i_row == rows_q - 32'd1);
            first_b <= first_a;
            last_b <= last_a;
            nf_b <= nf_a;
            tlast_b <= tlast_a;
            first_c <= first_b;
            last_c <= last_b;
            nf_c <= nf_b;
            tlast_c <= tlast_b;
            tlast_d <= tlast_c;
            tlast_e <= tlast_d;
            out_last <= ve && tlast_e;
        end
    end

    // Stage A: synchronous ROM/RAM reads with a clock enable (block RAM output register).
    reg [WW-1:0]     w_a;
    reg [SIMD*8-1:0] x_a;
    always @(posedge clk) begin
        if (en) begin
            w_a <= wrom[i_wa];
            x_a <= ibuf[{rb, i_sf[SFB-1:0]}];
        end
    end

    // Per-channel tables, read one stage ahead of their use.
    reg [PE*32-1:0] bias_c;
    reg [PE*32-1:0] mult_d;
    reg [PE*8-1:0]  shift_d, shift_e;
    always @(posedge clk) begin
        if (en) begin
            bias_c <= brom[nf_b];
            mult_d <= mrom[nf_c];
            shift_d <= srom[nf_c];
            shift_e <= shift_d;
        end
    end

    // ------------------------------------------------------------------------------------------
    // Datapath, one copy per PE.
    genvar p, s;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            // Stage B: SIMD exact products.
            wire [SIMD*PW-1:0] prod_d;
            for (s = 0; s < SIMD; s = s + 1) begin : g_lane
                wire signed [WBITS-1:0] w = w_a[(p*SIMD + s)*WBITS +: WBITS];
                wire signed [7:0]       x = x_a[s*8 +: 8];
                if (WBITS < 8) begin : g_lut
                    // A narrow product is a few LUTs; a DSP slice per lane would run out first
                    // (the planner counts DSPs this way). Vivado honours the attribute on the
                    // signal; Yosys ignores it and will report a DSP per lane.
                    (* use_dsp = "no" *) wire signed [PW-1:0] m;
                    assign m = w * x;
                    assign prod_d[s*PW +: PW] = m;
                end else begin : g_dsp
                    wire signed [PW-1:0] m = w * x;
                    assign prod_d[s*PW +: PW] = m;
                end
            end
            reg [SIMD*PW-1:0] prod;
            always @(posedge clk) begin
                if (en) prod <= prod_d;
            end

            // Stage C: adder tree over the SIMD lanes.
            wire [DW-1:0] dot_d;
            vitfpga_addtree #(.N(SIMD), .IW(PW), .OW(DW)) u_tree (.in(prod), .sum(dot_d));
            reg signed [DW-1:0] dot;
            always @(posedge clk) begin
                if (en) dot <= dot_d;
            end

            // Stage D: accumulate; the first beat of a fold starts from the bias.
            wire signed [31:0] bias_l = bias_c[p*32 +: 32];
            /* verilator lint_off WIDTHEXPAND */
            wire signed [31:0] dot_l = dot;  // sign extension, intended
            /* verilator lint_on WIDTHEXPAND */
            reg signed [31:0] acc;
            always @(posedge clk) begin
                if (en && vc) acc <= (first_c ? bias_l : acc) + dot_l;
            end

            // Stage E: acc * M. M < 2^31, so its 32-bit lane read as signed is still M.
            wire signed [31:0] mult_l = mult_d[p*32 +: 32];
            reg signed [63:0] prod64;
            always @(posedge clk) begin
                if (en) prod64 <= acc * mult_l;
            end

            // Stage F: round half up, arithmetic shift, clamp. |acc*M| < 2^62 and the rounding
            // term is at most 2^61, so the int64 sum cannot overflow.
            wire [7:0]         sh = shift_e[p*8 +: 8];
            wire signed [63:0] rnd = 64'sd1 <<< (sh - 8'd1);
            wire signed [63:0] t = (prod64 + rnd) >>> sh;
            wire [7:0]         y_d = (t > HI) ? 8'd127 : (t < LO) ? LO8 : t[7:0];
            reg [7:0] y;
            always @(posedge clk) begin
                if (en) y <= y_d;
            end
            assign out_data[p*8 +: 8] = y;
        end
    endgenerate
endmodule
