`timescale 1ns/1ps
// Matrix-vector unit: every quantised linear layer of a model, one layer per run (docs/engine.md).
//
// Per input row x[0..K-1] (int8) and output channel n of the layer being run:
//   acc = bias[n] + sum_k x[k]*w[n][k]                       (int32)
//   y   = clamp((acc*M[n] + 2^(S[n]-1)) >>> S[n], LO, 127)     (int64, LO = 0 with ReLU else -128)
//
// Weight words [0, ROM_DEPTH) are a ROM loaded with the bitstream; words [ROM_DEPTH, ROM_DEPTH +
// RAM_DEPTH) are a RAM (URAM on UltraScale+, which cannot be initialised) that a weight-load run
// (`load` high at start) fills from the input stream, BPW beats a word.
//
// A program ROM holds one entry per layer: where its weights and per-channel tables start, its
// input folds SF and output folds NF, and flags (bit0 ReLU, bit1 stream, bit2 raw). `start`
// latches the entry selected by `layer`.
//
// Streamed operand (OPDEPTH > 0; docs/engine.md "Streamed operand"): an operand buffer of OPDEPTH
// words of PE*SIMD int8 lanes, written at any time through the opw_* port with byte-lane enables.
// An entry with `stream` reads its "weight" word w_base + nf*SF + sf from that buffer instead of
// the weight ROM/RAM, in the same pipeline slot, so activation x activation products (attention's
// Q.K^T and A.V) run on the same array at the same rate. The lane products are then int8 x int8 in
// every run (ROM weights sign-extended to 8 bits). `out_raw` carries the beat's PE int32
// accumulators (bias + dot product) alongside the requantised out_data on every beat; an entry
// with `raw` only tells the top which of the two it wants, so the bit costs no logic here.
// With OPDEPTH = 0 none of this exists: stream and raw are ignored, out_raw is 0 and the
// products are WBITS x 8 as before.
// Folding: PE output channels x SIMD input lanes per clock. The weight ROM is read in its storage
// order (word w_base + nf*SF + sf), one word per clock, so it needs only an incrementing address
// that returns to w_base at the end of each row.
//
// Input rows land in a two-bank buffer. A bank counts the beats written into it; the compute side
// may read beat sf of its bank as soon as that beat has arrived, so the first output fold (nf = 0)
// of a row overlaps its own arrival, and the next row streams into the other bank while this
// row's remaining folds are computed. A bank is handed back to the writer on the row's last read.
//
// Pipeline (one enable `en` for every stage; it drops only while an output beat is held back by
// m_axis TREADY, so nothing is lost or duplicated under backpressure):
//   A  weight ROM word (or operand buffer word) + input buffer word (synchronous reads)
//   B  PE x SIMD products (registered, DSP/LUT multipliers)
//   C  per-PE adder tree over SIMD lanes; bias table read
//   D  per-PE int32 accumulator; M and S table reads
//   E  acc * M in int64
//   F  round, arithmetic shift, clamp -> output register (m_axis TDATA/TVALID); the raw
//      accumulator, delayed through E and F, leaves with it on out_raw
module vitfpga_mvu #(
    parameter integer PE = 4,
    parameter integer SIMD = 8,
    parameter integer WBITS = 4,
    parameter integer NLAYERS = 1,
    parameter integer ROM_DEPTH = 64,
    parameter integer RAM_DEPTH = 0,
    parameter integer CDEPTH = 16,
    parameter integer MAXSF = 4,
    parameter WEIGHT_FILE = "weights.mem",
    parameter BIAS_FILE = "bias.mem",
    parameter MULT_FILE = "mult.mem",
    parameter SHIFT_FILE = "shift.mem",
    parameter PROGRAM_FILE = "program.mem",
    parameter integer OPDEPTH = 0  // operand buffer words; 0: no buffer, no streamed runs
) (
    input  wire              clk,
    input  wire              rst_n,
    // control: `start` is honoured only while idle; `done` pulses once the final beat has left
    input  wire              start,
    input  wire [31:0]       rows,
    input  wire [31:0]       layer,
    input  wire              load,  // this start is a weight load of `rows` words
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
    input  wire              out_ready,
    // operand buffer writes (OPDEPTH > 0), at any time; lane L = bits [8L +: 8], int8.
    // All unused when OPDEPTH = 0, and opw_addr's bits above the buffer's address always.
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire                   opw_en,
    input  wire [15:0]            opw_addr,  // < OPDEPTH
    input  wire [PE*SIMD-1:0]     opw_be,    // lane L written when opw_be[L]
    input  wire [PE*SIMD*8-1:0]   opw_data,
    /* verilator lint_on UNUSEDSIGNAL */
    // the beat's PE int32 accumulators, lane p = bits [32p +: 32] (0 when OPDEPTH = 0)
    output wire [PE*32-1:0]       out_raw
);
    localparam integer WW = PE * SIMD * WBITS;
    localparam integer PROG_BITS = 104;  // vitfpga.hls.layout.PROGRAM_FIELDS
    // Index widths (at least one bit so that degenerate sizes still declare legal vectors).
    localparam integer SFB = (MAXSF > 1) ? $clog2(MAXSF) : 1;
    localparam integer CB = SFB + 1;  // beat counts run 0..MAXSF inclusive
    localparam integer WDEPTH = ROM_DEPTH + RAM_DEPTH;
    localparam integer WAB0 = (WDEPTH > 1) ? $clog2(WDEPTH) : 1;
    localparam integer OPB = (OPDEPTH > 1) ? $clog2(OPDEPTH) : 1;
    // The weight-word address counts over the ROM/RAM and the operand buffer alike.
    localparam integer WAB = (OPDEPTH > 0 && OPB > WAB0) ? OPB : WAB0;
    localparam integer NL = PE * SIMD;  // lanes of a weight / operand word
    localparam integer ROMB = (ROM_DEPTH > 1) ? $clog2(ROM_DEPTH) : 1;
    localparam integer RAMB = (RAM_DEPTH > 1) ? $clog2(RAM_DEPTH) : 1;
    localparam integer BEAT = SIMD * 8;
    localparam integer BPW = (WW + BEAT - 1) / BEAT;  // input beats per loaded weight word
    localparam integer LWX = (BPW + 1) * BEAT;  // assembly register, one spare beat wide
    localparam [WAB:0] ROM_END = ROM_DEPTH[WAB:0];  // one bit wider: ROM_DEPTH may be 2^WAB
    localparam integer CAB = (CDEPTH > 1) ? $clog2(CDEPTH) : 1;
    localparam integer LB = (NLAYERS > 1) ? $clog2(NLAYERS) : 1;
    // Lane operand width: WBITS, or int8 when the lanes also take streamed operands.
    localparam integer WX = (OPDEPTH > 0) ? 8 : WBITS;
    localparam integer PW = WX + 8;  // one product, exact
    localparam integer DW = PW + ((SIMD > 1) ? $clog2(SIMD) : 0);  // one SIMD dot product, exact
    localparam signed [63:0] HI = 64'sd127;

    // ------------------------------------------------------------------------------------------
    // Memories: plain arrays with $readmemh so that synthesis infers block RAM / ROM.
    reg [PE*32-1:0] brom [0:CDEPTH-1];
    reg [PE*32-1:0] mrom [0:CDEPTH-1];
    reg [PE*8-1:0] srom [0:CDEPTH-1];
    reg [PROG_BITS-1:0] prog [0:NLAYERS-1];
    initial begin
        $readmemh(BIAS_FILE, brom);
        $readmemh(MULT_FILE, mrom);
        $readmemh(SHIFT_FILE, srom);
        $readmemh(PROGRAM_FILE, prog);
    end
    // Two banks of 2^SFB beats, addressed {bank, beat}; the padding for SF not a power of two
    // buys address logic free of adders.
    reg [SIMD*8-1:0] ibuf [0:(2 << SFB)-1];

    // The program entry `layer` selects; an index past the program reads as an empty entry.
    wire layer_ok = (layer < NLAYERS);
    wire [LB-1:0] layer_idx = layer[LB-1:0];
    wire [PROG_BITS-1:0] entry = layer_ok ? prog[layer_idx] : {PROG_BITS{1'b0}};
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] e_wbase = entry[31:0];
    wire [31:0] e_cbase = entry[63:32];
    wire [15:0] e_sf = entry[79:64];
    wire [15:0] e_nf = entry[95:80];
    wire [7:0]  e_relu = entry[103:96];
    /* verilator lint_on UNUSEDSIGNAL */

    // ------------------------------------------------------------------------------------------
    // Run control
    reg        busy;       // a layer run
    reg        busy_load;  // a weight load
    reg [31:0] rows_q;
    wire       go = start && !busy && !busy_load;
    wire       en = !out_valid || out_ready;
    assign idle = !busy && !busy_load;
    wire       load_last;  // the final word of a load is being written

    // The running layer's entry, latched at start: folds (and their last indices, which the
    // counters compare against), table bases and ReLU.
    reg [CB-1:0]  sf_q, sf_last;
    reg [15:0]    nf_last;
    reg [WAB-1:0] w_base;
    reg [CAB-1:0] c_base;
    reg           relu_q;
    /* verilator lint_off UNUSEDSIGNAL */
    reg           stream_q;  // weights from the operand buffer (read only when OPDEPTH > 0)
    /* verilator lint_on UNUSEDSIGNAL */
    always @(posedge clk) begin
        if (go) begin
            sf_q <= e_sf[CB-1:0];
            sf_last <= e_sf[CB-1:0] - 1'b1;
            nf_last <= e_nf - 16'd1;
            w_base <= e_wbase[WAB-1:0];
            c_base <= e_cbase[CAB-1:0];
            relu_q <= e_relu[0];
            stream_q <= (OPDEPTH > 0) && e_relu[1];
        end
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            busy <= 1'b0;
            busy_load <= 1'b0;
            done <= 1'b0;
            rows_q <= 32'd0;
        end else begin
            done <= 1'b0;
            if (go) begin
                rows_q <= rows;
                // An empty run finishes at once rather than waiting for a beat that never comes.
                if (rows == 32'd0 || (!load && !layer_ok)) done <= 1'b1;
                else if (load) busy_load <= 1'b1;
                else busy <= 1'b1;
            end else if (busy_load && load_last) begin
                busy_load <= 1'b0;
                done <= 1'b1;
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
    wire          wb_row_end = (cnt_wb == sf_last);

    wire in_ready_run = busy && (rows_in != rows_q) && (cnt_wb != sf_q);
    assign in_ready = in_ready_run || busy_load;
    wire in_fire = in_valid && in_ready_run;

    always @(posedge clk) begin
        if (in_fire) ibuf[{wb, cnt_wb[SFB-1:0]}] <= in_data;
    end

    // Compute-side issue state, declared here because releasing a bank touches the counts.
    reg           rb;
    reg [CB-1:0]  i_sf;
    reg [15:0]    i_nf;
    reg [WAB-1:0] i_wa;  // weight word: w_base + i_nf*SF + i_sf
    reg [CAB-1:0] i_ca;  // table word: c_base + i_nf
    reg [31:0]    i_row;
    wire [CB-1:0] cnt_rb = rb ? cnt1 : cnt0;
    wire can_issue = busy && (i_row != rows_q) && (i_sf < cnt_rb);
    wire issue = en && can_issue;
    wire i_sf_last = (i_sf == sf_last);
    wire i_nf_last = (i_nf == nf_last);
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
            i_nf <= 16'd0;
            i_wa <= e_wbase[WAB-1:0];
            i_ca <= e_cbase[CAB-1:0];
            i_row <= 32'd0;
        end else if (issue) begin
            i_wa <= row_end ? w_base : i_wa + 1'b1;
            if (i_sf_last) begin
                i_sf <= {CB{1'b0}};
                if (i_nf_last) begin
                    i_nf <= 16'd0;
                    i_ca <= c_base;
                    rb <= !rb;
                    i_row <= i_row + 32'd1;
                end else begin
                    i_nf <= i_nf + 16'd1;
                    i_ca <= i_ca + 1'b1;
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
    reg [CAB-1:0] ca_a, ca_b, ca_c;
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
            ca_a <= i_ca;
            tlast_a <= i_sf_last && i_nf_last && (i_row == rows_q - 32'd1);
            first_b <= first_a;
            last_b <= last_a;
            ca_b <= ca_a;
            tlast_b <= tlast_a;
            first_c <= first_b;
            last_c <= last_b;
            ca_c <= ca_b;
            tlast_c <= tlast_b;
            tlast_d <= tlast_c;
            tlast_e <= tlast_d;
            out_last <= ve && tlast_e;
        end
    end

    // ------------------------------------------------------------------------------------------
    // Weight load: assemble BPW beats into a word, beat j at bits [j*BEAT +: BEAT], and write
    // RAM words 0, 1, ... Words past the RAM are consumed and dropped.
    // The spare low beat is never read, and without a RAM part nothing of a load is.
    /* verilator lint_off UNUSEDSIGNAL */
    reg [LWX-1:0] lword;
    reg [31:0]    l_beat;  // beats of the current word received
    reg [31:0]    l_word;  // words completed
    wire          l_fire = busy_load && in_valid;
    wire [LWX-1:0] lword_next = {in_data, lword[LWX-1:BEAT]};
    wire          l_word_end = l_fire && (l_beat == BPW - 1);
    wire [WW-1:0] l_data = lword_next[BEAT +: WW];
    /* verilator lint_on UNUSEDSIGNAL */
    assign load_last = l_word_end && (l_word == rows_q - 32'd1);
    always @(posedge clk) begin
        if (!rst_n || go) begin
            l_beat <= 32'd0;
            l_word <= 32'd0;
        end else if (l_fire) begin
            lword <= lword_next;
            l_beat <= l_word_end ? 32'd0 : l_beat + 32'd1;
            if (l_word_end) l_word <= l_word + 32'd1;
        end
    end

    // Stage A: synchronous ROM/RAM reads with a clock enable (block RAM output register).
    reg [SIMD*8-1:0] x_a;
    reg              sel_ram_a;
    always @(posedge clk) begin
        if (en) begin
            x_a <= ibuf[{rb, i_sf[SFB-1:0]}];
            /* verilator lint_off UNSIGNED */
            sel_ram_a <= ({1'b0, i_wa} >= ROM_END);  // constant when either part is empty
            /* verilator lint_on UNSIGNED */
        end
    end
    reg [WW-1:0] rom_q, ram_q;
    generate
        if (ROM_DEPTH > 0) begin : g_rom
            reg [WW-1:0] wrom [0:ROM_DEPTH-1];
            initial $readmemh(WEIGHT_FILE, wrom);
            /* verilator lint_off WIDTHTRUNC */
            wire [ROMB-1:0] rom_addr = i_wa;  // past the ROM the read is not selected
            /* verilator lint_on WIDTHTRUNC */
            always @(posedge clk) begin
                if (en) rom_q <= wrom[rom_addr];
            end
        end else begin : g_no_rom
            always @(posedge clk) rom_q <= {WW{1'b0}};
        end
        if (RAM_DEPTH > 0) begin : g_ram
            (* ram_style = "ultra" *) reg [WW-1:0] wram [0:RAM_DEPTH-1];
`ifndef SYNTHESIS
            // synthesis translate_off
            // URAM powers up as zeros; a simulator's array starts as X.
            integer z;
            initial for (z = 0; z < RAM_DEPTH; z = z + 1) wram[z] = {WW{1'b0}};
            // synthesis translate_on
`endif
            /* verilator lint_off WIDTHTRUNC */
            wire [RAMB-1:0] ram_addr = {1'b0, i_wa} - ROM_END;
            wire [RAMB-1:0] load_addr = l_word;
            /* verilator lint_on WIDTHTRUNC */
            always @(posedge clk) begin
                if (l_word_end && l_word < RAM_DEPTH) wram[load_addr] <= l_data;
                if (en) ram_q <= wram[ram_addr];
            end
        end else begin : g_no_ram
            always @(posedge clk) ram_q <= {WW{1'b0}};
        end
    endgenerate
    wire [WW-1:0] w_a = sel_ram_a ? ram_q : rom_q;

    // Operand buffer: one write port with byte-lane enables (the block RAM byte-write template)
    // and one synchronous read port in the weight ROM's slot, addressed by the same counter.
    // The top never writes a word the running entry reads, so read-during-write is moot.
    /* verilator lint_off UNUSEDSIGNAL */
    reg [NL*8-1:0] op_q;  // read only when OPDEPTH > 0
    /* verilator lint_on UNUSEDSIGNAL */
    generate
        if (OPDEPTH > 0) begin : g_op
            reg [NL*8-1:0] opbuf [0:OPDEPTH-1];
            /* verilator lint_off WIDTHTRUNC */
            /* verilator lint_off WIDTHEXPAND */
            wire [OPB-1:0] opw_a = opw_addr;
            wire [OPB-1:0] op_addr = i_wa;  // WAB >= OPB
            /* verilator lint_on WIDTHEXPAND */
            /* verilator lint_on WIDTHTRUNC */
            integer lane;
            always @(posedge clk) begin
                if (opw_en) begin
                    for (lane = 0; lane < NL; lane = lane + 1)
                        if (opw_be[lane]) opbuf[opw_a][lane*8 +: 8] <= opw_data[lane*8 +: 8];
                end
                if (en) op_q <= opbuf[op_addr];
            end
        end else begin : g_no_op
            always @(posedge clk) op_q <= {NL*8{1'b0}};
        end
    endgenerate

    // The clamp's lower bound, fixed for the run.
    wire signed [63:0] lo = relu_q ? 64'sd0 : -64'sd128;
    wire [7:0]         lo8 = relu_q ? 8'h00 : 8'h80;

    // Per-channel tables, read one stage ahead of their use.
    reg [PE*32-1:0] bias_c;
    reg [PE*32-1:0] mult_d;
    reg [PE*8-1:0]  shift_d, shift_e;
    always @(posedge clk) begin
        if (en) begin
            bias_c <= brom[ca_b];
            mult_d <= mrom[ca_c];
            shift_d <= srom[ca_c];
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
                wire signed [WBITS-1:0] w_rom = w_a[(p*SIMD + s)*WBITS +: WBITS];
                wire signed [7:0]       x = x_a[s*8 +: 8];
                wire signed [WX-1:0]    w;
                if (OPDEPTH > 0) begin : g_w8
                    // int8 lanes for both kinds of run: a ROM weight sign-extended, or an operand.
                    /* verilator lint_off WIDTHEXPAND */
                    wire signed [7:0] w_ext = w_rom;  // sign extension, intended
                    /* verilator lint_on WIDTHEXPAND */
                    assign w = stream_q ? op_q[(p*SIMD + s)*8 +: 8] : w_ext;
                end else begin : g_wrom
                    assign w = w_rom;
                end
                if (WX < 8) begin : g_lut
                    // A narrow product is a few LUTs; a DSP slice per lane would run out first
                    // (the planner counts DSPs this way). Written as partial products because
                    // Yosys ignores use_dsp and would put every `*` on a DSP48.
                    wire [PW-1:0] m;
                    vitfpga_lutmul #(.WBITS(WX)) u_mul (.w(w), .x(x), .p(m));
                    assign prod_d[s*PW +: PW] = m;
                end else begin : g_dsp
                    // 8-bit weights, or any weights once the lanes take streamed int8 operands:
                    // one DSP slice a lane, cheaper than an 8 x 8 LUT product (~135 LUTs more a
                    // lane in Yosys; docs/engine.md "Streamed operand").
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
            wire [7:0]         y_d = (t > HI) ? 8'd127 : (t < lo) ? lo8 : t[7:0];
            reg [7:0] y;
            always @(posedge clk) begin
                if (en) y <= y_d;
            end
            assign out_data[p*8 +: 8] = y;

            // The raw accumulator, delayed alongside stages E and F so that it leaves with the
            // same beat as y.
            if (OPDEPTH > 0) begin : g_raw
                reg [31:0] acc_e, acc_f;
                always @(posedge clk) begin
                    if (en) begin
                        acc_e <= acc;
                        acc_f <= acc_e;
                    end
                end
                assign out_raw[p*32 +: 32] = acc_f;
            end else begin : g_no_raw
                assign out_raw[p*32 +: 32] = 32'd0;
            end
        end
    endgenerate
endmodule
