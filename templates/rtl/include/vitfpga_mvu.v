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
// input folds SF and output folds NF (of PE*PG channels; of PE for a streamed operand), and flags
// (bit0 ReLU, bit1 stream, bit2 raw; bits 7:4 the beats of a row's last fold minus one, read when
// PG > 1). `start` latches the entry selected by `layer`.
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
// Folding: PE output channels x SIMD input lanes per clock. Weights stay encoded (docs/engine.md,
// "Weight streams and decoders"): lane i of the PE*SIMD*LANE_BITS-bit weight words carries its
// elements (E bits each, from the program entry) as one bit stream. The issue side tracks where
// the next element starts (word `lo`, offset `off` in OFFSET_STEP units) and reads the word that
// holds the element's last bit; an element that straddles two words takes its low part from
// `held`, the word of the previous iteration. Every row restarts at w_base, offset 0. The
// decoders (vitfpga_wdec_*.v: lane selector, dense intB, N:M, codebook) sit between the word
// read and the products; only those the parameters ask for are built.
//
// Input rows land in a two-bank buffer. A bank counts the beats written into it; the compute side
// may read beat sf of its bank as soon as that beat has arrived, so the first output fold (nf = 0)
// of a row overlaps its own arrival, and the next row streams into the other bank while this
// row's remaining folds are computed. A bank is handed back to the writer on the row's last read.
// With an N:M decoder (NM_N > 0) each bank is R = NM_M/NM_N sub-banks interleaved by beat index,
// so an N:M iteration reads its whole window of R beats at once (and may issue once they have
// arrived); dense and codebook layers read one beat through an R-way select.
//
// Pipeline (one enable `en` for every stage; it drops only while an output beat is held back by
// m_axis TREADY, so nothing is lost or duplicated under backpressure). Every stage fits the
// logic-depth budget at the board's clock (hls/plan/timing.py; docs/vit.md "Timing"):
//   A  weight ROM word (or operand buffer word) + input buffer word(s) (synchronous reads)
//   B  element select and decode into registered int operands, then the PE x SIMD products
//      (registered): 2 clocks; with PACK, two PEs' products from one DSP (vitfpga_mulpack.v,
//      operand, M and P registers): 3 clocks
//   C  per-PE adder tree over SIMD lanes, TS = ceil(log4 SIMD) registered stages of up to four
//      inputs (with TWO ceil(log3 SIMD) stages of ternary adders); bias table read. A row
//      beyond PE (row groups) only ever multiplies a WBITS weight, so its products and tree are
//      WBITS + 8 bits wide instead of int8 x int8's 16
//   D  per-row int32 accumulator; M and S table reads (with PG > 1 the accumulators start from 0
//      and the serializer follows: hold, group select with the table reads, bias add; 3 clocks)
//   E-H  requantisation (vitfpga_requant.v, 4 clocks) -> output register (m_axis
//      TDATA/TVALID); the raw accumulator, delayed four clocks, leaves with it on out_raw
// With PAIR (TWO; docs/engine.md "Tokens in pairs") a weight layer's rows go two a weight word:
// B is four products a DSP48E2 (vitfpga_mul2x2), C four trees of ternary adders a pair of rows
// (and the two rows' input sums), then one stage combining a streamed operand's fields; D two
// accumulators a row; the serializer hands out the first row's beats of a fold, then the
// second's (out_tok), and takes the row's input sum off in a stage of its own.
// In control, in_ready and the rows-left flags are registers computed from the next state, and
// every compare is against a registered bound (no subtractor before a compare).
module vitfpga_mvu #(
    parameter integer PE = 4,
    parameter integer SIMD = 8,
    parameter integer WBITS = 4,      // decoded weight width: the multipliers' width
    parameter integer LANE_BITS = 4,  // weight-memory bits per lane (the widest element)
    parameter integer OFFSET_STEP = 4,  // element offsets within a lane are multiples of this
    parameter integer STRADDLE = 0,   // 1: some element may span two words (keeps `held`)
    parameter integer SHIFT_BITS = 4, // widest element narrower than LANE_BITS (what moves)
    parameter integer WMASK = 16,     // bit B set: dense or N:M layers with B-bit weights
    parameter integer KINDS = 1,      // bit k set: codec k occurs (0 dense, 1 N:M, 2 codebook,
                                      // 3 ternary)
    parameter integer NM_N = 0,       // N:M decoder pattern; NM_N = 0: none
    parameter integer NM_M = 0,
    parameter integer CB_BITS = 0,    // codebook index bits; 0: no codebook decoder
    parameter integer NLAYERS = 1,
    parameter integer ROM_DEPTH = 64,
    parameter integer RAM_DEPTH = 0,
    parameter integer CDEPTH = 16,
    parameter integer MAXBEATS = 4,   // most input beats of a row (a bank's depth)
    parameter WEIGHT_FILE = "weights.mem",
    parameter BIAS_FILE = "bias.mem",
    parameter MULT_FILE = "mult.mem",
    parameter SHIFT_FILE = "shift.mem",
    parameter PROGRAM_FILE = "program.mem",
    parameter CODEBOOK_FILE = "codebook.mem",  // read only when CB_BITS > 0
    parameter integer OPDEPTH = 0, // operand buffer words; 0: no buffer, no streamed runs
    parameter integer OP_STYLE = 0, // the operand buffer's placement (vitfpga_lane_ram.v STYLE)
    // Two products per DSP (vitfpga_mulpack.v mul2x8) at this operand shift: 18 on UltraScale+
    // (DSP48E2), 16 on 7-series (DSP48E1); 0: one product per lane. Needs int8 lanes (OPDEPTH > 0),
    // an even PE and no N:M decoder (both PEs of a pair must see the same input lane).
    parameter integer PACK = 0,
    // Row groups: a weight layer's fold computes PE*PG output channels (PG = 1: PE), then leaves
    // as PG beats of PE lanes, one a clock (the serializer below); a streamed-operand run uses
    // the first PE rows only. The rows beyond PE have no operand-buffer lanes, so the weight
    // layers grow without the operand buffer (docs/engine.md, "Row groups"). At most 16.
    parameter integer PG = 1,
    // Two tokens a weight word (docs/engine.md "Tokens in pairs"): a weight layer's run takes its
    // rows two at a time, each weight word read once for both, four products a DSP48E2 (two rows'
    // weights times two tokens' inputs, vitfpga_mulpack.v vitfpga_mul2x2). Needs PACK 18, PG > 1
    // and every weight layer's weights in [-1, 1] (the planner checks them); the bias tables then
    // hold bias - 128*sum_k w[n][k] (vitfpga.hls.plan.layout). Streamed operands run one row a
    // pass on the same DSPs.
    parameter integer PAIR = 0
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
    // input rows, `beats` (SF, or SF*R for N:M) beats of SIMD int8 lanes each
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
    output wire [PE*32-1:0]       out_raw,
    // the beat's token within its pair (1: the pair's second row); 0 without PAIR
    output reg                    out_tok
);
    localparam integer NR = PE * PG;  // rows of a weight fold
    localparam integer WW = NR * SIMD * LANE_BITS;
    localparam integer PROG_BITS = 128;  // vitfpga.hls.plan.layout.PROGRAM_FIELDS
    // Index widths (at least one bit so that degenerate sizes still declare legal vectors).
    localparam integer SFB = (MAXBEATS > 1) ? $clog2(MAXBEATS) : 1;
    // Tokens in pairs, where the parameters allow it (PAIR above); a bank then holds two rows.
    localparam integer TWO = (PAIR != 0 && PACK == 18 && OPDEPTH > 0 && PE % 2 == 0 &&
                              NM_N == 0 && PG > 1 && WBITS == 2) ? 1 : 0;
    localparam integer CB = SFB + 1 + TWO;  // beat counts run 0..MAXBEATS (a bank's) inclusive
    // Decoders. R input beats an N:M iteration (1 without one), RB = log2 R.
    localparam integer R = (NM_N > 0) ? NM_M / NM_N : 1;
    localparam integer RB = (R > 1) ? $clog2(R) : 0;
    localparam integer SUBB = (SFB > RB) ? SFB - RB : 1;  // sub-bank index bits
    localparam integer NPOS = LANE_BITS / OFFSET_STEP;  // element offsets within a lane
    localparam integer OB = (NPOS > 1) ? $clog2(NPOS) : 1;
    localparam integer SUMB = OB + 1;  // offset + element, in OFFSET_STEP units
    /* verilator lint_off WIDTHTRUNC */
    localparam [SUMB-1:0] NPOS_U = NPOS;  // fits: NPOS < 2^SUMB
    /* verilator lint_on WIDTHTRUNC */
    localparam integer CBK = (CB_BITS > 0) ? CB_BITS : 1;
    localparam integer CBW = 8 << CBK;  // a codebook table: 2^CB_BITS int8 entries
    // x_beat: a single-beat input lane is needed by dense/codebook layers and streamed operands.
    localparam integer HAS_BEAT = ((KINDS & 13) != 0 || OPDEPTH > 0) ? 1 : 0;
    localparam integer TERN = ((KINDS & 8) != 0) ? 1 : 0;  // a ternary decoder
    localparam integer WDEPTH = ROM_DEPTH + RAM_DEPTH;
    localparam integer WAB0 = (WDEPTH > 1) ? $clog2(WDEPTH) : 1;
    localparam integer OPB = (OPDEPTH > 1) ? $clog2(OPDEPTH) : 1;
    // The weight-word address counts over the ROM/RAM and the operand buffer alike.
    localparam integer WAB = (OPDEPTH > 0 && OPB > WAB0) ? OPB : WAB0;
    localparam integer NL = PE * SIMD;  // lanes of an operand word
    localparam integer NLW = NR * SIMD;  // lanes of a weight word
    localparam integer GB = (PG > 1) ? $clog2(PG) : 1;  // a group index
    /* verilator lint_off WIDTHTRUNC */
    localparam [GB-1:0] PG_M1 = PG - 1;
    /* verilator lint_on WIDTHTRUNC */
    localparam integer ROMB = (ROM_DEPTH > 1) ? $clog2(ROM_DEPTH) : 1;
    localparam integer RAMB = (RAM_DEPTH > 1) ? $clog2(RAM_DEPTH) : 1;
    localparam integer BEAT = SIMD * 8;
    localparam integer BPW = (WW + BEAT - 1) / BEAT;  // input beats per loaded weight word
    localparam integer LWX = (BPW + 1) * BEAT;  // assembly register, one spare beat wide
    localparam [WAB:0] ROM_END = ROM_DEPTH[WAB:0];  // one bit wider: ROM_DEPTH may be 2^WAB
    localparam integer CAB = (CDEPTH > 1) ? $clog2(CDEPTH) : 1;
    /* verilator lint_off WIDTHTRUNC */
    localparam [CAB-1:0] PG_CA = PG;  // a weight fold's table words
    localparam [CAB-1:0] CA_ONE = 1;
    /* verilator lint_on WIDTHTRUNC */
    localparam integer LB = (NLAYERS > 1) ? $clog2(NLAYERS) : 1;
    localparam [LB:0] NLAYERS_U = NLAYERS[LB:0];  // fits: NLAYERS <= 2^LB
    // Lane operand width: WBITS, or int8 when the lanes also take streamed operands.
    localparam integer WX = (OPDEPTH > 0) ? 8 : WBITS;
    localparam integer PW = WX + 8;  // one product, exact
    // Element bits the dense sign extension reads: the lane, or the N:M value field.
    localparam integer EW = LANE_BITS;
    // The adder tree's registered stages (vitfpga_addtree_pipe's count; hls.plan.engine
    // tree_stages): ceil(log4 SIMD), at least 1; with TWO ceil(log3 SIMD) (TERNARY: about as
    // many LUTs as single rows' trees for twice the sums).
    function integer tree_stages(input integer n, input integer r);
        integer left;
        begin
            tree_stages = 1;
            for (left = (n + r - 1) / r; left > 1; left = (left + r - 1) / r)
                tree_stages = tree_stages + 1;
        end
    endfunction
    localparam integer TS = tree_stages(SIMD, (TWO != 0) ? 3 : 4);
    // The products take MB clocks: operands, then product registers; packed, also the DSP's
    // M register (on UltraScale+ the pre-adder, the multiply and the extraction of the two
    // products would not fit one clock).
    localparam integer MB = (PACK > 0 && OPDEPTH > 0 && PE % 2 == 0 && NM_N == 0) ? 3 : 2;
    // b to c: the products' later registers, the tree (and with TWO the stage that combines a
    // streamed operand's fields)
    localparam integer TD = TS + MB - 1 + TWO;
    localparam integer PK = (MB == 3) ? PACK : 0;  // the shift where packing applies, else 0

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

    // The program entry `layer` selects; an index past the program reads as an empty entry.
    // Narrow compares only: a 32-bit one is a long carry chain on the start path.
    /* verilator lint_off UNSIGNED */
    wire layer_ok = (layer[31:LB] == {(32 - LB){1'b0}}) && ({1'b0, layer[LB-1:0]} < NLAYERS_U);
    /* verilator lint_on UNSIGNED */
    wire [LB-1:0] layer_idx = layer[LB-1:0];
    wire [PROG_BITS-1:0] entry = layer_ok ? prog[layer_idx] : {PROG_BITS{1'b0}};
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] e_wbase = entry[31:0];
    wire [31:0] e_cbase = entry[63:32];
    wire [15:0] e_sf = entry[79:64];
    wire [15:0] e_nf = entry[95:80];
    wire [7:0]  e_relu = entry[103:96];
    wire [7:0]  e_codec = entry[111:104];
    wire [7:0]  e_ebits = entry[119:112];
    wire [7:0]  e_wbits = entry[127:120];
    /* verilator lint_on UNUSEDSIGNAL */
    wire        e_stream = (OPDEPTH > 0) && e_relu[1];
    // Row beats: SF compute folds, R beats each for an N:M layer.
    wire [CB-1:0] e_beats = (R > 1 && e_codec == 8'd1 && !e_stream) ? (e_sf[CB-1:0] << RB)
                                                                    : e_sf[CB-1:0];
    // With TWO a weight layer's rows come in pairs: a bank holds both rows' beats.
    wire          e_pair = (TWO != 0) && !e_stream;
    wire [CB-1:0] e_bank = e_pair ? e_beats << 1 : e_beats;

    // ------------------------------------------------------------------------------------------
    // Run control
    reg        busy;       // a layer run
    reg        busy_load;  // a weight load
    reg [31:0] rows_last;  // rows - 1, registered so that no compare subtracts
    // The issue side's rows: pairs with TWO (the last one a single row when rows is odd).
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0] i_rows_last, i_rows_pen;  // its last index, and the one before (TWO)
    reg        odd_q;  // read only with TWO
    /* verilator lint_on UNUSEDSIGNAL */
    wire       go = start && !busy && !busy_load;
    wire       en = !out_valid || out_ready;
    assign idle = !busy && !busy_load;
    wire       load_last;  // the final word of a load is being written

    // The running layer's entry, latched at start: folds (and their last indices, which the
    // counters compare against), table bases and ReLU.
    reg [CB-1:0]  beats_q, beats_last, sf_last;
    reg [15:0]    nf_last;
    reg [WAB-1:0] w_base;
    reg [CAB-1:0] c_base;
    reg           relu_q;
    /* verilator lint_off UNUSEDSIGNAL */
    reg [GB-1:0]  glast_q;  // beats of a row's last fold minus one (read only when PG > 1)
    // Decoder controls, each read only by the decoders the parameters build.
    reg           stream_q;  // weights from the operand buffer (OPDEPTH > 0)
    reg           nm_q;      // an N:M layer
    reg           cbook_q;   // a codebook layer
    reg           tern_q;    // a ternary layer
    wire          pair_q = (TWO != 0) && !stream_q;  // rows in pairs (a weight layer)
    reg [8:0]     wsel_q;    // one-hot weight bits B (dense and N:M sign extension)
    reg [CBK-1:0] cbmask_q;  // the codebook index's E bits
    reg [CBW-1:0] table_q;   // the codebook layer's table
    reg [SUMB-1:0] eu_q;     // element bits E in OFFSET_STEP units
    /* verilator lint_on UNUSEDSIGNAL */
    integer u;
    always @(posedge clk) begin
        if (go) begin
            beats_q <= e_bank;
            beats_last <= e_bank - 1'b1;
            sf_last <= e_sf[CB-1:0] - 1'b1;
            nf_last <= e_nf - 16'd1;
            w_base <= e_wbase[WAB-1:0];
            c_base <= e_cbase[CAB-1:0];
            relu_q <= e_relu[0];
            /* verilator lint_off WIDTHTRUNC */
            glast_q <= e_relu[7:4];  // < PG <= 16
            /* verilator lint_on WIDTHTRUNC */
            stream_q <= e_stream;
            nm_q <= (NM_N > 0) && e_codec == 8'd1 && !e_stream;
            cbook_q <= (CB_BITS > 0) && e_codec == 8'd2 && !e_stream;
            tern_q <= (TERN != 0) && e_codec == 8'd3 && !e_stream;
            for (u = 0; u < 9; u = u + 1) wsel_q[u] <= ({24'd0, e_wbits} == u);
            for (u = 0; u < CBK; u = u + 1) cbmask_q[u] <= ({24'd0, e_ebits} > u);
            // A streamed operand is one whole lane an iteration, like a single-width layer.
            eu_q <= NPOS_U;
            if (!e_stream)
                for (u = 1; u < NPOS; u = u + 1)
                    if ({24'd0, e_ebits} == u * OFFSET_STEP) eu_q <= u[SUMB-1:0];
        end
    end
    generate
        if (CB_BITS > 0) begin : g_cbrom
            reg [CBW-1:0] cbrom [0:NLAYERS-1];
            initial $readmemh(CODEBOOK_FILE, cbrom);
            always @(posedge clk) begin
                if (go) table_q <= layer_ok ? cbrom[layer_idx] : {CBW{1'b0}};
            end
        end else begin : g_no_cbrom
            always @(posedge clk) table_q <= {CBW{1'b0}};
        end
    endgenerate

    always @(posedge clk) begin
        if (!rst_n) begin
            busy <= 1'b0;
            busy_load <= 1'b0;
            done <= 1'b0;
        end else begin
            done <= 1'b0;
            if (go) begin
                rows_last <= rows - 32'd1;
                odd_q <= rows[0];
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

    // From rows_last a clock after the start, not from `rows` (logic depth: the top's row
    // count is itself a multiplexer); the first issue comes later. (rows_last - 2)/2 is no
    // pair index for rows < 3, as it must be.
    always @(posedge clk) begin
        i_rows_last <= pair_q ? rows_last >> 1 : rows_last;
        i_rows_pen <= pair_q ? (rows_last - 32'd2) >> 1 : rows_last - 32'd1;
    end

    // ------------------------------------------------------------------------------------------
    // Input side: fill bank `wb` beat by beat, then move to the other bank.
    reg          wb;
    reg [CB-1:0] cnt0, cnt1;  // beats present in each bank
    reg [31:0]   rows_in;
    wire [CB-1:0] cnt_wb = wb ? cnt1 : cnt0;
    wire          wb_row_end = (cnt_wb == beats_last);

    // in_ready is a register: busy, rows still to come and room in bank `wb`, computed from the
    // next state of the counters below, so it equals that function of the state every clock
    // while no consumer's logic sits behind the counters' (logic depth, docs/vit.md "Timing").
    reg  in_ready_run;
    reg  in_more;  // rows still to arrive
    assign in_ready = in_ready_run || busy_load;
    wire in_fire = in_valid && in_ready_run;
    wire in_row_done = in_fire && wb_row_end;

    // Compute-side issue state, declared here because releasing a bank touches the counts.
    reg           rb;
    reg [CB-1:0]  i_sf;
    reg [15:0]    i_nf;
    reg [CAB-1:0] i_ca;  // table word: c_base + i_nf (times PG for a weight layer)
    reg [31:0]    i_row;
    wire [CB-1:0] cnt_rb = rb ? cnt1 : cnt0;
    // TWO: the second rows' beats present in each bank, where the next beat is written
    // (wr_idx of row w_hi of bank wb), and whether the issuing row pair has its second row
    // (i_two; not for a streamed operand nor an odd run's last pair).
    /* verilator lint_off UNUSEDSIGNAL */
    reg [CB-1:0]  cnt_hi0, cnt_hi1;  // read only with TWO, like w_hi
    reg [SFB-1:0] wr_idx;
    reg           w_hi;
    /* verilator lint_on UNUSEDSIGNAL */
    reg           i_two;
    // Iteration i_sf needs beat i_sf, or for N:M its window's last beat i_sf*R + R-1.
    wire ready_beat;
    generate
        if (R > 1) begin : g_need_nm
            wire [CB+RB-1:0] need = {i_sf, {RB{1'b1}}};
            assign ready_beat = nm_q ? ({{RB{1'b0}}, cnt_rb} > need) : (i_sf < cnt_rb);
        end else if (TWO != 0) begin : g_need_two
            // A pair's iteration needs the second row's beat i_sf (the first row's came before).
            wire [CB-1:0] hi_rb = rb ? cnt_hi1 : cnt_hi0;
            assign ready_beat = i_two ? (i_sf < hi_rb) : (i_sf < cnt_rb);
        end else begin : g_need
            assign ready_beat = (i_sf < cnt_rb);
        end
    endgenerate
    reg  i_more;  // rows still to issue, a register like in_more
    wire i_sf_last = (i_sf == sf_last);
    // With PG > 1 a fold's PG beats leave one a clock, so a weight fold may end only PG clocks
    // after the previous one (never binding when SF >= PG, as the planner folds).
    wire fold_ok;
    wire can_issue = busy && i_more && ready_beat && fold_ok;
    wire issue = en && can_issue;
    wire i_nf_last = (i_nf == nf_last);
    wire row_end = issue && i_sf_last && i_nf_last;

    // The writer only touches a bank that is not full and the reader only releases a full one,
    // so the two updates never hit the same counter in the same cycle.
    wire          wb_n = wb ^ in_row_done;
    wire          inc0 = in_fire && !wb, inc1 = in_fire && wb;
    wire          rel0 = row_end && !rb, rel1 = row_end && rb;
    wire [CB-1:0] cnt0_n = rel0 ? {CB{1'b0}} : cnt0 + {{(CB-1){1'b0}}, inc0};
    wire [CB-1:0] cnt1_n = rel1 ? {CB{1'b0}} : cnt1 + {{(CB-1){1'b0}}, inc1};
    // Bank k full next clock, written as compares of the registered counts (so that the late
    // release and write strobes only select): cnt_n == beats iff not released and either
    // written at beats - 1 or already full.
    wire          full0_n = !rel0 && (inc0 ? (cnt0 == beats_last) : (cnt0 == beats_q));
    wire          full1_n = !rel1 && (inc1 ? (cnt1 == beats_last) : (cnt1 == beats_q));
    // A row's last beat (with TWO a bank holds two rows: count rows, not banks).
    wire          in_tok_done = (TWO != 0) ? in_fire && ({1'b0, wr_idx} == sf_last[SFB:0])
                                           : in_row_done;
    wire          in_more_n = in_more && !(in_tok_done && rows_in == rows_last);
    always @(posedge clk) begin
        if (!rst_n) begin
            in_ready_run <= 1'b0;
            in_more <= 1'b0;
            i_more <= 1'b0;
        end else if (go) begin
            i_more <= (rows != 32'd0);
            in_ready_run <= (rows != 32'd0) && !load && layer_ok && (e_beats != {CB{1'b0}});
            in_more <= (rows != 32'd0);
        end else begin
            in_ready_run <= busy && in_more_n && !(wb_n ? full1_n : full0_n);
            in_more <= in_more_n;
            if (row_end && i_row == i_rows_last) i_more <= 1'b0;
        end
    end
    always @(posedge clk) begin
        if (!rst_n || go) begin
            wb <= 1'b0;
            cnt0 <= {CB{1'b0}};
            cnt1 <= {CB{1'b0}};
            rows_in <= 32'd0;
        end else begin
            wb <= wb_n;
            cnt0 <= cnt0_n;
            cnt1 <= cnt1_n;
            if (in_tok_done) rows_in <= rows_in + 32'd1;
        end
    end
    generate
        if (TWO != 0) begin : g_two_ctl
            // The write position (beat wr_idx of row w_hi of the bank), the second rows' beats,
            // and whether the next pair has its second row (at each pair's end).
            always @(posedge clk) begin
                if (!rst_n || go) begin
                    cnt_hi0 <= {CB{1'b0}};
                    cnt_hi1 <= {CB{1'b0}};
                    wr_idx <= {SFB{1'b0}};
                    w_hi <= 1'b0;
                    i_two <= e_pair && (rows != 32'd1);
                end else begin
                    cnt_hi0 <= rel0 ? {CB{1'b0}} : cnt_hi0 + {{(CB-1){1'b0}}, inc0 && w_hi};
                    cnt_hi1 <= rel1 ? {CB{1'b0}} : cnt_hi1 + {{(CB-1){1'b0}}, inc1 && w_hi};
                    if (in_fire) begin
                        if ({1'b0, wr_idx} == sf_last[SFB:0]) begin
                            wr_idx <= {SFB{1'b0}};
                            w_hi <= pair_q && !w_hi;
                        end else wr_idx <= wr_idx + 1'b1;
                    end
                    // the pair after this one is an odd run's last: its second row never comes
                    if (row_end) i_two <= pair_q && !(odd_q && i_row == i_rows_pen);
                end
            end
        end else begin : g_one_ctl
            always @(posedge clk) begin
                cnt_hi0 <= {CB{1'b0}};
                cnt_hi1 <= {CB{1'b0}};
                wr_idx <= {SFB{1'b0}};
                w_hi <= 1'b0;
                i_two <= 1'b0;
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (!rst_n || go) begin
            rb <= 1'b0;
            i_sf <= {CB{1'b0}};
            i_nf <= 16'd0;
            i_ca <= e_cbase[CAB-1:0];
            i_row <= 32'd0;
        end else if (issue) begin
            if (i_sf_last) begin
                i_sf <= {CB{1'b0}};
                if (i_nf_last) begin
                    i_nf <= 16'd0;
                    i_ca <= c_base;
                    rb <= !rb;
                    i_row <= i_row + 32'd1;
                end else begin
                    i_nf <= i_nf + 16'd1;
                    i_ca <= i_ca + ((PG > 1 && !stream_q) ? PG_CA : CA_ONE);
                end
            end else begin
                i_sf <= i_sf + 1'b1;
            end
        end
    end

    generate
        if (PG > 1) begin : g_gap
            // enabled clocks until a weight fold may end: its PG beats, twice for a row pair
            localparam integer GW = GB + TWO;
            /* verilator lint_off WIDTHTRUNC */
            localparam [GW-1:0] GAP1 = PG - 1, GAP2 = 2 * PG - 1;
            /* verilator lint_on WIDTHTRUNC */
            reg [GW-1:0] gap;
            always @(posedge clk) begin
                if (!rst_n || go) gap <= {GW{1'b0}};
                else if (issue && i_sf_last && !stream_q) gap <= i_two ? GAP2 : GAP1;
                else if (en && gap != {GW{1'b0}}) gap <= gap - 1'b1;
            end
            assign fold_ok = (gap == {GW{1'b0}}) || !i_sf_last;
        end else begin : g_no_gap
            assign fold_ok = 1'b1;
        end
    endgenerate

    // Weight stream position of the next element: word `lo` (and lo + 1), offset `off` in
    // OFFSET_STEP units, and whether the element straddles into word lo + 1. The read address is
    // the word holding the element's last bit. With one element width (NPOS = 1) this is the
    // plain incrementing address w_base + nf*SF + sf. Streamed operands count the same way.
    reg  [WAB-1:0] i_lo;
    wire [WAB-1:0] i_wa;  // the weight (or operand) word read for the element
    // Ternary: one element serves three iterations (phase i_ph = it mod 3 within the row); the
    // position moves on after phase 2 only, so phases 1 and 2 read the same word again.
    /* verilator lint_off UNUSEDSIGNAL */
    reg  [1:0]     i_ph;  // read only with a ternary decoder
    /* verilator lint_on UNUSEDSIGNAL */
    wire           i_adv = (TERN == 0) || !tern_q || (i_ph == 2'd2);
    always @(posedge clk) begin
        if (!rst_n || go) i_ph <= 2'd0;
        else if (issue) i_ph <= (row_end || !tern_q || i_ph == 2'd2) ? 2'd0 : i_ph + 2'd1;
    end
    /* verilator lint_off UNUSEDSIGNAL */
    wire [OB-1:0]  i_off;
    wire           i_strad;
    /* verilator lint_on UNUSEDSIGNAL */
    generate
        if (NPOS > 1) begin : g_track
            reg [WAB-1:0]  lo1;  // i_lo + 1
            reg [OB-1:0]   off;
            reg            strad;
            wire [SUMB-1:0] sum = {1'b0, off} + eu_q;
            wire           wrap = (sum >= NPOS_U);
            wire [SUMB-1:0] off_n = wrap ? sum - NPOS_U : sum;
            always @(posedge clk) begin
                if (!rst_n || go) begin
                    i_lo <= e_wbase[WAB-1:0];
                    lo1 <= e_wbase[WAB-1:0] + 1'b1;
                    off <= {OB{1'b0}};
                    strad <= 1'b0;
                end else if (issue) begin
                    if (row_end) begin
                        i_lo <= w_base;
                        lo1 <= w_base + 1'b1;
                        off <= {OB{1'b0}};
                        strad <= 1'b0;
                    end else if (i_adv) begin
                        if (wrap) begin
                            i_lo <= lo1;
                            lo1 <= lo1 + 1'b1;
                        end
                        off <= off_n[OB-1:0];
                        strad <= (STRADDLE != 0) && (off_n + eu_q > NPOS_U);
                    end
                end
            end
            assign i_off = off;
            assign i_strad = strad;
            assign i_wa = strad ? lo1 : i_lo;
        end else begin : g_plain
            always @(posedge clk) begin
                if (!rst_n || go) i_lo <= e_wbase[WAB-1:0];
                else if (issue && (row_end || i_adv)) i_lo <= row_end ? w_base : i_lo + 1'b1;
            end
            assign i_off = {OB{1'b0}};
            assign i_strad = 1'b0;
            assign i_wa = i_lo;
        end
    endgenerate

    // ------------------------------------------------------------------------------------------
    // Stage control: valid, first/last beat of a fold, fold index, last beat of the run. "b" is
    // the clock after the reads; the products' further MB - 1 clocks and the adder tree's TS
    // clocks follow it, so the side-band runs through a delay line of TD = TS + MB - 1 entries,
    // the last of which is the "c" stage the accumulator reads. "d" ends a fold; "q" is where the
    // requantisation takes it (d itself, or the serializer's output with PG > 1).
    reg va, vb, vd, ve, vf, vg;
    wire vq, tlast_q;
    wire tok_q;  // the beat's token in its pair, at q (0 without TWO)
    reg  tok_e, tok_f, tok_g;
    // The fold's rows are a pair (TWO), at each stage like lf.
    /* verilator lint_off UNUSEDSIGNAL */
    reg two_a, two_b, two_d;  // read only with TWO
    reg [TD-1:0] two_t;
    /* verilator lint_on UNUSEDSIGNAL */
    // The row's last fold (it may have fewer than PG beats) and the fold's table word, at d.
    /* verilator lint_off UNUSEDSIGNAL */
    reg lf_a, lf_b, lf_d;  // lf_d and ca_d read only when PG > 1
    reg [TD-1:0] lf_t;
    reg [CAB-1:0] ca_d;
    /* verilator lint_on UNUSEDSIGNAL */
    reg first_a, first_b;
    reg last_a, last_b;
    reg [CAB-1:0] ca_a, ca_b;
    reg tlast_a, tlast_b, tlast_d, tlast_e, tlast_f, tlast_g;
    reg [TD-1:0]  vt, first_t, last_t, tlast_t;
    reg [CAB-1:0] ca_t [0:TD-1];
    wire          vc = vt[TD-1];
    wire          first_c = first_t[TD-1];
    wire          last_c = last_t[TD-1];
    wire          tlast_c = tlast_t[TD-1];
    wire [CAB-1:0] ca_c = ca_t[TD-1];
    // The bias is read one stage ahead of the accumulator that adds it.
    wire [CAB-1:0] ca_pre = ca_t[TD-2];  // TD >= 2
    integer ti;

    always @(posedge clk) begin
        if (!rst_n) begin
            va <= 1'b0;
            vb <= 1'b0;
            vt <= {TD{1'b0}};
            vd <= 1'b0;
            ve <= 1'b0;
            vf <= 1'b0;
            vg <= 1'b0;
            out_valid <= 1'b0;
        end else if (en) begin
            va <= can_issue;
            vb <= va;
            vt[0] <= vb;
            for (ti = 1; ti < TD; ti = ti + 1) vt[ti] <= vt[ti-1];
            vd <= vc && last_c;  // an accumulator is complete after its fold's last beat
            ve <= vq;
            vf <= ve;  // the requantisation's 4 clocks from vq to out_valid
            vg <= vf;
            out_valid <= vg;
        end
    end

    always @(posedge clk) begin
        if (en) begin
            first_a <= (i_sf == {CB{1'b0}});
            last_a <= i_sf_last;
            ca_a <= i_ca;
            tlast_a <= i_sf_last && i_nf_last && (i_row == i_rows_last);
            lf_a <= i_nf_last;
            lf_b <= lf_a;
            lf_t[0] <= lf_b;
            for (ti = 1; ti < TD; ti = ti + 1) lf_t[ti] <= lf_t[ti-1];
            lf_d <= lf_t[TD-1];
            two_a <= i_two;
            two_b <= two_a;
            two_t[0] <= two_b;
            for (ti = 1; ti < TD; ti = ti + 1) two_t[ti] <= two_t[ti-1];
            two_d <= two_t[TD-1];
            ca_d <= ca_c;
            first_b <= first_a;
            last_b <= last_a;
            ca_b <= ca_a;
            tlast_b <= tlast_a;
            first_t[0] <= first_b;
            last_t[0] <= last_b;
            tlast_t[0] <= tlast_b;
            ca_t[0] <= ca_b;
            for (ti = 1; ti < TD; ti = ti + 1) begin
                first_t[ti] <= first_t[ti-1];
                last_t[ti] <= last_t[ti-1];
                tlast_t[ti] <= tlast_t[ti-1];
                ca_t[ti] <= ca_t[ti-1];
            end
            tlast_d <= tlast_c;
            tlast_e <= tlast_q;
            tlast_f <= tlast_e;
            tlast_g <= tlast_f;
            out_last <= vg && tlast_g;
            tok_e <= tok_q;
            tok_f <= tok_e;
            tok_g <= tok_f;
            out_tok <= tok_g;
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
    assign load_last = l_word_end && (l_word == rows_last);
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
    // Input buffer: two banks of 2^SFB beats, addressed {bank, beat}; the padding for a beat
    // count not a power of two buys address logic free of adders. With R > 1, sub-bank k holds
    // the beats b with b mod R = k at {bank, b div R}, and win_a is the R beats read at once.
    /* verilator lint_off UNUSEDSIGNAL */
    reg [R*SIMD*8-1:0] win_a;  // all of it read only by the N:M decoder
    /* verilator lint_on UNUSEDSIGNAL */
    /* verilator lint_off UNUSEDSIGNAL */
    reg [OB-1:0]       off_a;    // read only when NPOS > 1
    reg                strad_a;  // read only with STRADDLE
    reg  [1:0]         ph_a;     // read only with a ternary decoder
    /* verilator lint_on UNUSEDSIGNAL */
    reg                sel_ram_a;
    always @(posedge clk) begin
        if (en) begin
            off_a <= i_off;
            strad_a <= i_strad;
            ph_a <= i_ph;
            /* verilator lint_off UNSIGNED */
            sel_ram_a <= ({1'b0, i_wa} >= ROM_END);  // constant when either part is empty
            /* verilator lint_on UNSIGNED */
        end
    end
    /* verilator lint_off UNUSEDSIGNAL */
    wire [SIMD*8-1:0] xb_a;  // the iteration's single input beat (dense, codebook, operand)
    wire [SIMD*8-1:0] xb1_a;  // TWO: the pair's second row's beat (zero for a single row)
    /* verilator lint_on UNUSEDSIGNAL */
    generate
        if (TWO != 0) begin : g_ibuf_two
            // Each bank's two rows in two memories read together: beat wr_idx of row w_hi.
            reg [SIMD*8-1:0] ibuf0 [0:(2 << SFB)-1];
            reg [SIMD*8-1:0] ibuf1 [0:(2 << SFB)-1];
            reg [SIMD*8-1:0] x1_a;
            always @(posedge clk) begin
                if (in_fire && !w_hi) ibuf0[{wb, wr_idx}] <= in_data;
                if (in_fire && w_hi) ibuf1[{wb, wr_idx}] <= in_data;
                if (en) begin
                    win_a <= ibuf0[{rb, i_sf[SFB-1:0]}];
                    x1_a <= ibuf1[{rb, i_sf[SFB-1:0]}];
                end
            end
            assign xb_a = win_a;
            assign xb1_a = two_a ? x1_a : {SIMD*8{1'b0}};
        end else if (R == 1) begin : g_ibuf
            reg [SIMD*8-1:0] ibuf [0:(2 << SFB)-1];
            always @(posedge clk) begin
                if (in_fire) ibuf[{wb, cnt_wb[SFB-1:0]}] <= in_data;
                if (en) win_a <= ibuf[{rb, i_sf[SFB-1:0]}];
            end
            assign xb_a = win_a;
            assign xb1_a = {SIMD*8{1'b0}};
        end else begin : g_ibuf_nm
            /* verilator lint_off UNUSEDSIGNAL */
            wire [CB-1:0] w_idx = cnt_wb >> RB;
            wire [CB-1:0] d_idx = i_sf >> RB;
            /* verilator lint_on UNUSEDSIGNAL */
            // An N:M iteration reads row i_sf of every sub-bank; a single beat i_sf is in
            // sub-bank i_sf mod R, row i_sf div R.
            wire [SUBB-1:0] r_idx = nm_q ? i_sf[SUBB-1:0] : d_idx[SUBB-1:0];
            reg  [RB-1:0]   bsel_a;
            always @(posedge clk) begin
                if (en) bsel_a <= i_sf[RB-1:0];
            end
            genvar k;
            for (k = 0; k < R; k = k + 1) begin : g_sub
                localparam [RB-1:0] KS = k;
                reg [SIMD*8-1:0] sbuf [0:(2 << SUBB)-1];
                always @(posedge clk) begin
                    if (in_fire && cnt_wb[RB-1:0] == KS) sbuf[{wb, w_idx[SUBB-1:0]}] <= in_data;
                    if (en) win_a[k*SIMD*8 +: SIMD*8] <= sbuf[{rb, r_idx}];
                end
            end
            assign xb_a = win_a[bsel_a*SIMD*8 +: SIMD*8];
            assign xb1_a = {SIMD*8{1'b0}};
        end
    endgenerate
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
    // The word of the previous valid iteration: the low part of a straddling element.
    /* verilator lint_off UNUSEDSIGNAL */
    reg [WW-1:0] held;  // read only with STRADDLE
    /* verilator lint_on UNUSEDSIGNAL */
    generate
        if (STRADDLE != 0 && NPOS > 1) begin : g_held
            always @(posedge clk) begin
                if (en && va) held <= w_a;
            end
        end else begin : g_no_held
            always @(posedge clk) held <= {WW{1'b0}};
        end
    endgenerate

    // Operand buffer: one write port with byte-lane enables (vitfpga_lane_ram.v: block RAM, URAM
    // or LUT RAM by OP_STYLE) and one synchronous read port in the weight ROM's slot, addressed
    // by the same counter.
    // The top never writes a word the running entry reads, so read-during-write is moot.
    /* verilator lint_off UNUSEDSIGNAL */
    wire [NL*8-1:0] op_q;  // read only when OPDEPTH > 0
    /* verilator lint_on UNUSEDSIGNAL */
    generate
        if (OPDEPTH > 0) begin : g_op
            /* verilator lint_off WIDTHTRUNC */
            /* verilator lint_off WIDTHEXPAND */
            wire [OPB-1:0] opw_a = opw_addr;
            wire [OPB-1:0] op_addr = i_wa;  // WAB >= OPB
            /* verilator lint_on WIDTHEXPAND */
            /* verilator lint_on WIDTHTRUNC */
            vitfpga_lane_ram #(.LANES(NL), .EW(8), .DEPTH(OPDEPTH), .STYLE(OP_STYLE)) u_opbuf (
                .clk(clk), .wr_en(opw_en), .wr_addr(opw_a), .wr_data(opw_data), .wr_mask(opw_be),
                .rd_en(en), .rd_addr(op_addr), .rd_data(op_q));
        end else begin : g_no_op
            assign op_q = {NL*8{1'b0}};
        end
    endgenerate

    // Per-channel tables, read one stage ahead of their use: with PG = 1 the bias for the
    // accumulator at c and M, S for the requantisation at d; with PG > 1 all three for the
    // serializer's beat (s_ca, below). One read port each, so each stays one memory.
    reg [PE*32-1:0] bias_c;
    reg [PE*32-1:0] mult_d;
    reg [PE*8-1:0]  shift_d;
    wire [CAB-1:0]  s_ca;  // the serializer's table word (PG > 1)
    wire [CAB-1:0]  bias_addr = (PG > 1) ? s_ca : ca_pre;
    wire [CAB-1:0]  tab_addr = (PG > 1) ? s_ca : ca_c;
    always @(posedge clk) begin
        if (en) begin
            bias_c <= brom[bias_addr];
            mult_d <= mrom[tab_addr];
            shift_d <= srom[tab_addr];
        end
    end

    // ------------------------------------------------------------------------------------------
    // Datapath, one copy per row (PE*PG). Lane l = p*SIMD + s of w_all / x_all / prod_all.
    wire [NLW*WX-1:0] w_all;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [NLW*8-1:0]  x_all;  // packed pairs read the even PE's lanes only
    wire [NLW*PW-1:0] prod_all;  // the weight-only rows read their products' low bits
    /* verilator lint_on UNUSEDSIGNAL */
    wire [NR*32-1:0]  acc_all;  // the rows' accumulators
    // TWO: the pair's second rows' accumulators, and each row's input sum (sum_k x + 128)
    /* verilator lint_off UNUSEDSIGNAL */
    wire [NR*32-1:0]  acc1_all;
    wire [63:0]       xs_all;  // row 0 at [31:0], row 1 at [63:32]
    /* verilator lint_on UNUSEDSIGNAL */
    genvar p, s;
    generate
        for (p = 0; p < NR; p = p + 1) begin : g_pe
            // Stage B: the lanes' decoded operands (their products: g_pack / g_single).
            for (s = 0; s < SIMD; s = s + 1) begin : g_lane
                // The lane's element, then its codec's decoder: weight w_rom, input x.
                /* verilator lint_off UNUSEDSIGNAL */
                wire [LANE_BITS-1:0] elem;
                wire [EW-1:0]        v;  // the field the intB sign extension reads
                wire [WBITS-1:0]     w_int;  // unused in a codebook-only design
                /* verilator lint_on UNUSEDSIGNAL */
                wire [7:0]           x_in;
                wire [WBITS-1:0]     w_dec;
                vitfpga_wdec_sel #(.L(LANE_BITS), .STEP(OFFSET_STEP), .STRADDLE(STRADDLE),
                                   .SW(SHIFT_BITS > 0 ? SHIFT_BITS : 1), .OB(OB)) u_sel (
                    .cur(w_a[(p*SIMD + s)*LANE_BITS +: LANE_BITS]),
                    .held(held[(p*SIMD + s)*LANE_BITS +: LANE_BITS]),
                    .off(off_a), .strad(strad_a), .elem(elem));
                if (NM_N > 0) begin : g_nm
                    wire [EW-1:0] nm_val;
                    wire [7:0]    nm_x;
                    vitfpga_wdec_nm #(.EW(EW), .M(NM_M)) u_nm (
                        .elem(elem), .grp(win_a[(s / NM_N)*NM_M*8 +: NM_M*8]), .val(nm_val),
                        .x(nm_x));
                    if ((KINDS & 1) != 0) begin : g_v2
                        assign v = nm_q ? nm_val : elem;
                    end else begin : g_v1
                        assign v = nm_val;
                    end
                    if (HAS_BEAT != 0) begin : g_x2
                        assign x_in = nm_q ? nm_x : xb_a[s*8 +: 8];
                    end else begin : g_x1
                        assign x_in = nm_x;
                    end
                end else begin : g_no_nm
                    assign v = elem;
                    assign x_in = xb_a[s*8 +: 8];
                end
                if (WMASK != 0) begin : g_int
                    vitfpga_wdec_dense #(.EW(EW), .WX(WBITS), .WMASK(WMASK)) u_int (
                        .v(v), .wsel(wsel_q), .w(w_int));
                end else begin : g_no_int
                    assign w_int = {WBITS{1'b0}};
                end
                /* verilator lint_off UNUSEDSIGNAL */
                wire [WBITS-1:0] w_ic;  // intB or codebook (unused in a ternary-only design)
                /* verilator lint_on UNUSEDSIGNAL */
                if (CB_BITS > 0) begin : g_cb
                    wire [WBITS-1:0] w_cb;
                    vitfpga_wdec_cb #(.KB(CB_BITS), .WX(WBITS)) u_cb (
                        .idx(elem[CB_BITS-1:0] & cbmask_q), .table_q(table_q), .w(w_cb));
                    if (WMASK != 0) begin : g_mix
                        assign w_ic = cbook_q ? w_cb : w_int;
                    end else begin : g_only
                        assign w_ic = w_cb;
                    end
                end else begin : g_no_cb
                    assign w_ic = w_int;
                end
                if (TERN != 0) begin : g_tern
                    wire [1:0] w_t;
                    vitfpga_wdec_tern u_tern (.clk(clk), .keep(en && va), .elem(elem[4:0]),
                                              .ph(ph_a), .w(w_t));
                    /* verilator lint_off WIDTHEXPAND */
                    wire signed [WBITS-1:0] w_text = $signed(w_t);  // sign extension, intended
                    /* verilator lint_on WIDTHEXPAND */
                    if (WMASK != 0 || CB_BITS > 0) begin : g_mix
                        assign w_dec = tern_q ? w_text : w_ic;
                    end else begin : g_only
                        assign w_dec = w_text;
                    end
                end else begin : g_no_tern
                    assign w_dec = w_ic;
                end
                wire signed [WBITS-1:0] w_rom = w_dec;
                wire signed [7:0]       x = x_in;
                wire signed [WX-1:0]    w;
                if (OPDEPTH > 0) begin : g_w8
                    // int8 lanes for both kinds of run: a ROM weight sign-extended, or an operand
                    // (the first PE rows only).
                    /* verilator lint_off WIDTHEXPAND */
                    wire signed [7:0] w_ext = w_rom;  // sign extension, intended
                    /* verilator lint_on WIDTHEXPAND */
                    // With TWO a weight lane carries w + 1 in [0, 2] (vitfpga_mul2x2): w is
                    // in [-1, 1], two bits, so this is a function of them, not an adder.
                    wire [7:0] w_one = {6'd0, w_rom[0] & !w_rom[WBITS-1], !w_rom[0] & !w_rom[WBITS-1]};
                    wire [7:0] w_lin = (TWO != 0) ? w_one : w_ext;
                    if (p < PE) begin : g_op
                        assign w = stream_q ? op_q[(p*SIMD + s)*8 +: 8] : w_lin;
                    end else begin : g_wt
                        assign w = w_lin;
                    end
                end else begin : g_wrom
                    assign w = w_rom;
                end
                assign w_all[(p*SIMD + s)*WX +: WX] = w;
                assign x_all[(p*SIMD + s)*8 +: 8] = x;
            end
            // Without TWO: this row's tree and accumulator (with TWO: g_two below).
            if (TWO == 0) begin : g_row
                // This row's product and dot-product widths: a weight-only row (p >= PE) multiplies
                // sign-extended WBITS weights, whose products fit WBITS + 8 bits exactly, so the
                // low bits of each lane's product are the product.
                localparam integer PWR = (p < PE) ? PW : WBITS + 8;
                localparam integer DWR = PWR + ((SIMD > 1) ? $clog2(SIMD) : 0);
                wire [SIMD*PWR-1:0] prod;
                for (s = 0; s < SIMD; s = s + 1) begin : g_prod
                    assign prod[s*PWR +: PWR] = prod_all[(p*SIMD + s)*PW +: PWR];
                end

                // Stage C: adder tree over the SIMD lanes, TS registered stages of up to four inputs
                // (vitfpga_addtree_pipe), every partial sum DWR bits wide.
                wire signed [DWR-1:0] dot;
                vitfpga_addtree_pipe #(.N(SIMD), .IW(PWR), .OW(DWR)) u_tree (
                    .clk(clk), .en(en), .in(prod), .sum(dot));

                // Stage D: accumulate; the first beat of a fold starts from the bias (PG = 1), or
                // from 0, the serializer adding the bias (PG > 1).
                wire signed [31:0] acc0;
                if (PG == 1) begin : g_bias
                    assign acc0 = bias_c[p*32 +: 32];
                end else begin : g_zero
                    assign acc0 = 32'sd0;
                end
                /* verilator lint_off WIDTHEXPAND */
                wire signed [31:0] dot_l = dot;  // sign extension, intended
                /* verilator lint_on WIDTHEXPAND */
                reg signed [31:0] acc;
                always @(posedge clk) begin
                    if (en && vc) acc <= (first_c ? acc0 : acc) + dot_l;
                end
                assign acc_all[p*32 +: 32] = acc;
            end
        end
    endgenerate

    // What the requantisation takes at q: PE accumulators (bias included), M and S.
    wire [PE*32-1:0] rq_acc;
    wire [PE*32-1:0] rq_mult;
    wire [PE*8-1:0]  rq_shift;
    generate
        if (PG == 1) begin : g_direct
            assign rq_acc = acc_all;
            assign rq_mult = mult_d;
            assign rq_shift = shift_d;
            assign vq = vd;
            assign tlast_q = tlast_d;
            assign tok_q = 1'b0;
            assign s_ca = ca_d;  // unused
        end else begin : g_ser
            // Serializer: at d the fold's PE*PG sums are held; beat j (group j's PE channels,
            // table word ca_d + j) is read on the j-th clock after, up to the fold's last beat
            // (PG, or fewer on a row's last fold; 1 for a streamed operand). The issue gap
            // (g_gap) keeps the next fold's d from overwriting a hold still being read.
            // With TWO a pair's fold holds both rows' sums and leaves as the first row's beats,
            // then the second's (s_tok), each with its input sum taken off (g_two).
            reg [2*NR*32-1:0] hold;  // the upper half with TWO only
            /* verilator lint_off UNUSEDSIGNAL */
            reg [63:0]      xs_hold;  // read only with TWO
            /* verilator lint_on UNUSEDSIGNAL */
            reg             s_act, s_tl, s_tok, s_two;
            reg [GB-1:0]    s_j, s_n;
            reg [CAB-1:0]   s_ca_q, s_ca0;
            wire            s_end_row = (s_j == s_n);
            wire            s_end = s_end_row && (s_tok || !s_two);
            always @(posedge clk) begin
                if (!rst_n) s_act <= 1'b0;
                else if (en) s_act <= vd || (s_act && !s_end);
            end
            always @(posedge clk) begin
                if (en) begin
                    if (vd) begin
                        hold <= {acc1_all, acc_all};
                        xs_hold <= xs_all;
                        s_j <= {GB{1'b0}};
                        s_n <= stream_q ? {GB{1'b0}} : (lf_d ? glast_q : PG_M1);
                        s_ca_q <= ca_d;
                        s_ca0 <= ca_d;
                        s_tl <= tlast_d;
                        s_tok <= 1'b0;
                        s_two <= (TWO != 0) && two_d;
                    end else if (s_act) begin
                        if (s_end_row) begin
                            s_j <= {GB{1'b0}};
                            s_ca_q <= s_ca0;
                            s_tok <= 1'b1;
                        end else begin
                            s_j <= s_j + 1'b1;
                            s_ca_q <= s_ca_q + 1'b1;
                        end
                    end
                end
            end
            assign s_ca = s_ca_q;
            // e: the beat's sums (tables read alongside into bias_c, mult_d, shift_d);
            // f (= q): the bias added.
            reg [PE*32-1:0] acc_e, accb_f;
            reg [PE*32-1:0] mult_f;
            reg [PE*8-1:0]  shift_f;
            reg             ve_s, vf_s, tl_e, tl_f, tk_e, tk_f;
            reg [31:0]      xs_e, xs_f;  // the beat's row's input sum (TWO weight layers), else 0
            /* verilator lint_off UNUSEDSIGNAL */
            reg [PE*32-1:0] accx_g, mult_g;  // TWO's extra stage (unused without it)
            reg [PE*8-1:0]  shift_g;
            reg             vg_s, tl_g, tk_g;
            /* verilator lint_on UNUSEDSIGNAL */
            integer k;
            always @(posedge clk) begin
                if (!rst_n) begin
                    ve_s <= 1'b0;
                    vf_s <= 1'b0;
                    vg_s <= 1'b0;
                end else if (en) begin
                    ve_s <= s_act;
                    vf_s <= ve_s;
                    vg_s <= vf_s;
                end
            end
            always @(posedge clk) begin
                if (en) begin
                    /* verilator lint_off WIDTHEXPAND */
                    acc_e <= hold[(s_tok*PG + s_j)*PE*32 +: PE*32];
                    /* verilator lint_on WIDTHEXPAND */
                    xs_e <= (TWO == 0 || stream_q) ? 32'd0 : s_tok ? xs_hold[63:32] : xs_hold[31:0];
                    tl_e <= s_tl && s_end;
                    tk_e <= s_tok;
                    tk_f <= tk_e;
                    for (k = 0; k < PE; k = k + 1)
                        accb_f[k*32 +: 32] <= acc_e[k*32 +: 32] + bias_c[k*32 +: 32];
                    // TWO: the input sum off in a stage of its own (two adds would not fit one)
                    xs_f <= xs_e;
                    for (k = 0; k < PE; k = k + 1)
                        accx_g[k*32 +: 32] <= accb_f[k*32 +: 32] - xs_f;
                    mult_g <= mult_f;
                    shift_g <= shift_f;
                    tl_g <= tl_f;
                    tk_g <= tk_f;
                    mult_f <= mult_d;
                    shift_f <= shift_d;
                    tl_f <= tl_e;
                end
            end
            assign rq_acc = (TWO != 0) ? accx_g : accb_f;
            assign rq_mult = (TWO != 0) ? mult_g : mult_f;
            assign rq_shift = (TWO != 0) ? shift_g : shift_f;
            assign vq = (TWO != 0) ? vg_s : vf_s;
            assign tlast_q = (TWO != 0) ? tl_g : tl_f;
            assign tok_q = (TWO != 0) ? tk_g : tk_f;
        end
        for (p = 0; p < PE; p = p + 1) begin : g_rq
            // Stages E-H after q: requantisation, 4 clocks (vitfpga_requant.v: the 32 x 31-bit
            // product as four DSP partial products, then round, shift and clamp, each stage
            // within the level budget).
            wire [31:0] acc = rq_acc[p*32 +: 32];
            wire [7:0] y;
            vitfpga_requant u_rq (.clk(clk), .en(en), .acc(acc), .mult(rq_mult[p*32 +: 32]),
                                  .shift(rq_shift[p*8 +: 8]), .relu(relu_q), .y(y));
            assign out_data[p*8 +: 8] = y;

            // The raw accumulator, delayed alongside the requantisation so that it leaves with
            // the same beat as y.
            if (OPDEPTH > 0) begin : g_raw
                reg [31:0] acc_e, acc_f, acc_g, acc_h;
                always @(posedge clk) begin
                    if (en) begin
                        acc_e <= acc;
                        acc_f <= acc_e;
                        acc_g <= acc_f;
                        acc_h <= acc_g;
                    end
                end
                assign out_raw[p*32 +: 32] = acc_h;
            end else begin : g_no_raw
                assign out_raw[p*32 +: 32] = 32'd0;
            end
        end
    endgenerate

    // Stage B products, MB clocks: the operands registered, then the products registered, so
    // that neither the decoders nor the multipliers share a clock with the other.
    generate
        if (TWO != 0) begin : g_two
            // Two rows' weights times two tokens a DSP (vitfpga_mul2x2). B a lane: a streamed
            // operand's int8 x (signed), else x + 128 of both rows in 9-bit fields.
            wire [SIMD*18-1:0] bpk;
            wire [2*SIMD*8-1:0] xl;  // the rows' x + 128 a lane, for their input sums
            genvar q, r;
            for (r = 0; r < SIMD; r = r + 1) begin : g_b
                wire [7:0] x0 = x_all[r*8 +: 8];
                wire [7:0] x1 = xb1_a[r*8 +: 8];
                assign bpk[r*18 +: 18] = stream_q ? {{10{x0[7]}}, x0}
                                                  : {1'b0, !x1[7], x1[6:0], 1'b0, !x0[7], x0[6:0]};
                assign xl[r*8 +: 8] = {!x0[7], x0[6:0]};
                assign xl[(SIMD + r)*8 +: 8] = {!x1[7], x1[6:0]};
            end
            // The input sums take the products' MB registers, then a tree like theirs.
            reg [2*SIMD*8-1:0] xd [0:MB-1];
            integer xk;
            always @(posedge clk) begin
                if (en) begin
                    xd[0] <= xl;
                    for (xk = 1; xk < MB; xk = xk + 1) xd[xk] <= xd[xk-1];
                end
            end
            // A tree's sum: SIMD unsigned 9-bit fields (or 8-bit inputs).
            localparam integer TW = 9 + ((SIMD > 1) ? $clog2(SIMD) : 0);
            for (q = 0; q < 2; q = q + 1) begin : g_xs
                wire [TW-1:0] t;
                vitfpga_addtree_pipe #(.N(SIMD), .IW(8), .OW(TW), .TERNARY(1), .SIGNED(0)) u_t (
                    .clk(clk), .en(en), .in(xd[MB-1][q*SIMD*8 +: SIMD*8]), .sum(t));
                reg [31:0] tc, acc;
                always @(posedge clk) begin
                    if (en) tc <= {{(32-TW){1'b0}}, t};
                    if (en && vc) acc <= (first_c ? 32'd0 : acc) + tc;
                end
                assign xs_all[q*32 +: 32] = acc;
            end
            for (q = 0; q < NR / 2; q = q + 1) begin : g_pair
                localparam integer OPR = (2 * q < PE) ? 1 : 0;  // the pair may hold operands
                wire [SIMD*36-1:0] pp;
                wire [4*SIMD*9-1:0] f;  // field i of lane r at [(i*SIMD + r)*9 +: 9]
                /* verilator lint_off UNUSEDSIGNAL */
                wire [SIMD-1:0] bw;     // lane r's borrow P[17] (streamed operands: OPR)
                /* verilator lint_on UNUSEDSIGNAL */
                wire sx = (OPR != 0) && stream_q;  // the high fields are signed
                for (r = 0; r < SIMD; r = r + 1) begin : g_lane
                    localparam integer I0 = 2 * q * SIMD + r;
                    localparam integer I1 = I0 + SIMD;
                    vitfpga_mul2x2 #(.OPERAND(OPR)) u_mul (
                        .clk(clk), .ce(en), .a0(w_all[I0*8 +: 8]), .a1(w_all[I1*8 +: 8]),
                        .b(bpk[r*18 +: 18]), .p(pp[r*36 +: 36]));
                    wire [35:0] pr = pp[r*36 +: 36];
                    // The trees sum unsigned fields: a signed high field (a streamed operand's)
                    // enters with its sign bit flipped, as itself + 256, taken off below.
                    assign f[(0*SIMD + r)*9 +: 9] = pr[8:0];
                    assign f[(1*SIMD + r)*9 +: 9] = {pr[17] ^ sx, pr[16:9]};
                    assign f[(2*SIMD + r)*9 +: 9] = pr[26:18];
                    assign f[(3*SIMD + r)*9 +: 9] = {pr[35] ^ sx, pr[34:27]};
                    assign bw[r] = pr[17];
                end
                // Field i's tree: rows 2q (i = 0, 1) and 2q + 1 (2, 3), first token then second.
                wire [4*TW-1:0] t;
                genvar i;
                for (i = 0; i < 4; i = i + 1) begin : g_f
                    vitfpga_addtree_pipe #(.N(SIMD), .IW(9), .OW(TW), .TERNARY(1), .SIGNED(0))
                        u_t (.clk(clk), .en(en), .in(f[i*SIMD*9 +: SIMD*9]),
                             .sum(t[i*TW +: TW]));
                end
                localparam integer CW = 2 + ((SIMD > 1) ? $clog2(SIMD) : 0);
                wire [CW-1:0] cb;  // the borrows' count (streamed operands: OPR pairs only)
                if (OPR != 0) begin : g_borrow
                    vitfpga_addtree_pipe #(.N(SIMD), .IW(1), .OW(CW), .TERNARY(1), .SIGNED(0))
                        u_c (.clk(clk), .en(en), .in(bw), .sum(cb));
                end else begin : g_no_borrow
                    assign cb = {CW{1'b0}};
                end
                // Combine (a registered stage): a weight layer's four sums are the two rows'
                // two tokens; a streamed operand's row value is low + 2^9 * high (+ borrows),
                // added above bit 9 only (narrow adders: the stage's logic depth), the high
                // sums less the 256 a lane their flipped sign bits added (h1s, h3s).
                wire [TW-1:0] t0 = t[0 +: TW], t1 = t[TW +: TW], t2 = t[2*TW +: TW],
                              t3 = t[3*TW +: TW];
                wire signed [TW+1:0] h1s, h3s;
                if ((SIMD & (SIMD - 1)) == 0) begin : g_flip
                    // 256 * SIMD = 2^(TW-1): flipping the top bit takes it off.
                    assign h1s = $signed({{3{!t1[TW-1]}}, t1[TW-2:0]});
                    assign h3s = $signed({{3{!t3[TW-1]}}, t3[TW-2:0]});
                end else begin : g_sub
                    localparam integer OFF_I = 256 * SIMD;  // < 2^(TW-1)
                    localparam [TW+1:0] OFF = OFF_I[TW+1:0];
                    assign h1s = $signed({2'b0, t1}) - $signed(OFF);
                    assign h3s = $signed({2'b0, t3}) - $signed(OFF);
                end
                wire [TW:0] t2c = {1'b0, t2} + {{(TW+1-CW){1'b0}}, cb};
                wire signed [TW+1:0] h0 = $signed({11'b0, t0[TW-1:9]}) + h1s;
                wire signed [TW+1:0] h1 = $signed({10'b0, t2c[TW:9]}) + h3s;
                localparam integer XW = 32 - 9 - (TW + 2);  // the sign extension above h
                // A weight layer's sums are unsigned, at most a bank's beats (twice MAXBEATS,
                // for margin) of SIMD fields of 511: accumulators that only ever hold those
                // (the second token's; both tokens' in rows without operands) are AW1 wide.
                localparam integer AW1_I = $clog2(2 * MAXBEATS * SIMD * 511 + 1);
                localparam integer AW1 = (AW1_I < 32) ? AW1_I : 32;
                localparam integer AW0 = (OPR != 0) ? 32 : AW1;
                /* verilator lint_off UNUSEDSIGNAL */
                reg [31:0] d00, d10;  // row 2q + j, token k: djk
                /* verilator lint_on UNUSEDSIGNAL */
                reg [AW1-1:0] d01, d11;
                always @(posedge clk) begin
                    if (en) begin
                        d00 <= sx ? {{XW{h0[TW+1]}}, h0, t0[8:0]} : {{(32-TW){1'b0}}, t0};
                        d10 <= sx ? {{XW{h1[TW+1]}}, h1, t2c[8:0]} : {{(32-TW){1'b0}}, t2};
                        d01 <= {{(AW1-TW){1'b0}}, t1};
                        d11 <= {{(AW1-TW){1'b0}}, t3};
                    end
                end
                reg [AW0-1:0] a00, a10;
                reg [AW1-1:0] a01, a11;
                always @(posedge clk) begin
                    if (en && vc) begin
                        a00 <= (first_c ? {AW0{1'b0}} : a00) + d00[AW0-1:0];
                        a01 <= (first_c ? {AW1{1'b0}} : a01) + d01;
                        a10 <= (first_c ? {AW0{1'b0}} : a10) + d10[AW0-1:0];
                        a11 <= (first_c ? {AW1{1'b0}} : a11) + d11;
                    end
                end
                /* verilator lint_off WIDTHEXPAND */
                assign acc_all[2*q*32 +: 32] = a00;
                assign acc_all[(2*q + 1)*32 +: 32] = a10;
                assign acc1_all[2*q*32 +: 32] = a01;
                assign acc1_all[(2*q + 1)*32 +: 32] = a11;
                /* verilator lint_on WIDTHEXPAND */
            end
            assign prod_all = {NLW*PW{1'b0}};
        end else begin : g_one
            assign acc1_all = {NR*32{1'b0}};
            assign xs_all = 64'd0;
        end
    endgenerate
    generate
        if (TWO == 0 && PK > 0) begin : g_pack
            // Two PEs' weights share each input lane: one DSP computes both products
            // (vitfpga_mulpack.v, mul2x8 at shift PK; LATENCY 3 = operand, M and P registers).
            genvar q, r;
            for (q = 0; q < NR / 2; q = q + 1) begin : g_pair
                for (r = 0; r < SIMD; r = r + 1) begin : g_lane
                    localparam integer I0 = 2 * q * SIMD + r;
                    localparam integer I1 = I0 + SIMD;
                    /* verilator lint_off PINCONNECTEMPTY */
                    vitfpga_mul2x8 #(.SHIFT(PK), .LATENCY(MB)) u_mul (
                        .clk(clk), .rst_n(rst_n), .ce(en), .in_valid(1'b0),
                        .a0(w_all[I0*8 +: 8]), .a1(w_all[I1*8 +: 8]), .b(x_all[I0*8 +: 8]),
                        .out_valid(), .p0(prod_all[I0*PW +: PW]), .p1(prod_all[I1*PW +: PW]));
                    /* verilator lint_on PINCONNECTEMPTY */
                end
            end
        end else if (TWO == 0) begin : g_single
            reg [NLW*WX-1:0] w_q;
            reg [NLW*8-1:0]  x_q;
            reg [NLW*PW-1:0] prod_q;
            always @(posedge clk) begin
                if (en) begin
                    w_q <= w_all;
                    x_q <= x_all;
                end
            end
            genvar l;
            for (l = 0; l < NLW; l = l + 1) begin : g_lane
                wire signed [WX-1:0] w = w_q[l*WX +: WX];
                wire signed [7:0]    x = x_q[l*8 +: 8];
                wire [PW-1:0]        m;
                if (WX < 8) begin : g_lut
                    // A narrow product is a few LUTs; a DSP slice per lane would run out first
                    // (the planner counts DSPs this way). Written as partial products because
                    // Yosys ignores use_dsp and would put every `*` on a DSP48.
                    vitfpga_lutmul #(.WBITS(WX)) u_mul (.w(w), .x(x), .p(m));
                end else begin : g_dsp
                    // 8-bit weights, or any weights once the lanes take streamed int8 operands:
                    // one DSP slice a lane, cheaper than an 8 x 8 LUT product (~135 LUTs more a
                    // lane in Yosys; docs/engine.md "Streamed operand").
                    wire signed [PW-1:0] ms = w * x;
                    assign m = ms;
                end
                always @(posedge clk) begin
                    if (en) prod_q[l*PW +: PW] <= m;
                end
            end
            assign prod_all = prod_q;
        end
    endgenerate
endmodule
