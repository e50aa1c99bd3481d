`timescale 1ns/1ps
// The whole ViT on chip (docs/vit.md): patches in, logits out, every weight and activation in
// on-chip memory. A program of ops (vitfpga.hls.vit_program) runs one op at a time, `images`
// times per start. Each op streams from one memory through one unit into one memory:
//
//   XM (int16 residual stream, position embedding, class row)  BM (every int8 tensor)
//   INPUT   s_axis beats ------------------------------------------------> BM
//   LINEAR  BM --> matmul engine (weight layer, or Q.K^T / A.V on the operand buffer) -->
//             BM | GELU table -> BM | residual add with XM -> XM | softmax -> BM | m_axis
//   LN      XM --> LayerNorm unit --> matmul engine (a weight layer) --> the LINEAR sinks
//   FILLK/V BM --> engine operand buffer (one head's K, or V transposed)
//   XCOPY   XM --> XM
//
// The reader issues one memory read per clock (a chunk of SIMD, PE, LANES or LN_L elements of
// a row, zero past the row's length) into a 4-entry FIFO the op's consumer drains; the sinks count
// rows and folds to find their write addresses. Python decided every address and constant.
// An LN op runs the LayerNorm beside the engine: the unit's LN_L outputs a clock are packed into
// SIMD-lane engine beats (a row's last beat zero past the row, then zero beats up to the op's
// `beats`), so the normalised rows never land in a memory.
//
// Weight words past ROM_DEPTH live in the engine's RAM (URAM on UltraScale+), which powers up
// empty: a start with `load` high is a weight load instead of a pass, `images` counting weight
// words, the input stream going straight to the engine (vitfpga_mvu.v, weight load), as the
// host-offload engine does it. The driver does it once after the bitstream loads.
module vitfpga_vit_core #(
    parameter integer PE = 4,
    parameter integer SIMD = 4,
    parameter integer LANES = 4,       // max(PE, SIMD, 2): the memories' port width
    parameter integer XM_ALIGN = 1,    // every XM / BM address a multiple of these (vitfpga_vmem)
    parameter integer BM_ALIGN = 1,
    parameter integer WBITS = 4,
    // Weight decoders of the engine (vitfpga_mvu.v; hls.emit.rtl.decoder_params)
    parameter integer LANE_BITS = 4,
    parameter integer OFFSET_STEP = 4,
    parameter integer STRADDLE = 0,
    parameter integer SHIFT_BITS = 4,
    parameter integer WMASK = 16,
    parameter integer KINDS = 1,
    parameter integer NM_N = 0,
    parameter integer NM_M = 0,
    parameter integer CB_BITS = 0,
    parameter integer NENTRIES = 1,    // engine program entries (layers + attention products)
    parameter integer ROM_DEPTH = 64,
    parameter integer RAM_DEPTH = 0,   // weight words loaded at start-up after the ROM's
    parameter integer CDEPTH = 16,
    parameter integer MAXSF = 4,
    parameter integer OPDEPTH = 16,    // engine operand buffer words
    parameter integer PACK = 0,        // engine: two products a DSP at this shift (vitfpga_mvu.v)
    parameter integer PG = 1,          // engine: row groups of the weight layers, likewise
    parameter integer PAIR = 0,        // engine: weight layers' rows two a word, likewise
    parameter integer NOPS = 2,
    parameter integer OPS_BLOCK = 0,   // 1: the op ROM in block RAM (hls/plan/whole.py)
    parameter integer EXP_BLOCK = 0,   // 1: the softmax's exp ROMs in block RAM, likewise
    parameter integer XWORDS = 64,     // XM words of LANES int16
    parameter integer BWORDS = 64,     // BM words of LANES int8
    parameter integer BM_STYLE = 0,    // BM's placement (vitfpga_lane_ram.v STYLE), the planner's
    parameter integer OP_STYLE = 0,    // the engine's operand buffer's, likewise
    parameter integer LN_DMAX = 64,
    parameter integer LN_PDEPTH = 64,
    parameter integer LN_L = 1,        // LayerNorm elements a clock (divides every LN row and SIMD)
    parameter integer SM_TMAX = 32,
    parameter integer SM_L = PE,       // softmax lanes: scores a clock, a power of two dividing PE
    parameter integer GELU_DEPTH = 256,
    parameter WEIGHT_FILE = "weights.mem",
    parameter BIAS_FILE = "bias.mem",
    parameter MULT_FILE = "mult.mem",
    parameter SHIFT_FILE = "shift.mem",
    parameter PROGRAM_FILE = "program.mem",
    parameter CODEBOOK_FILE = "codebook.mem",  // read only when CB_BITS > 0
    parameter OPS_FILE = "vit_ops.mem",
    parameter XM_EVEN_FILE = "xm_even.mem",
    parameter XM_ODD_FILE = "xm_odd.mem",
    parameter GAMMA_FILE = "ln_gamma.mem",
    parameter BETA_FILE = "ln_beta.mem",
    parameter GELU_FILE = "gelu.mem",
    parameter EXP_FILE = "exp2_lut.mem"
) (
    input  wire              clk,
    input  wire              rst_n,
    input  wire              start,
    input  wire [31:0]       images,  // images a pass runs, or words a load writes
    input  wire              load,    // this start is a weight load (RAM_DEPTH > 0)
    output wire              idle,
    output reg               done,
    input  wire [SIMD*8-1:0] in_data,
    input  wire              in_valid,
    output wire              in_ready,
    output wire [PE*8-1:0]   out_data,
    output wire              out_valid,
    output wire              out_last,
    input  wire              out_ready
);
    // Op word fields (vitfpga.hls.vit_program.OP_FIELDS; a test holds the two equal).
    localparam integer OP_BITS = 384;
    localparam integer F_KIND = 0;  // 4 bits
    localparam integer F_SINK = 4;  // 4 bits
    localparam integer F_ROWS = 8;  // 16 bits
    localparam integer F_SRC = 24;  // 24 bits
    localparam integer F_SRC_STRIDE = 48;  // 16 bits
    localparam integer F_SRC_LEN = 64;  // 16 bits
    localparam integer F_DST = 80;  // 24 bits
    localparam integer F_DST_STRIDE = 104;  // 16 bits
    localparam integer F_DST_LEN = 120;  // 16 bits
    localparam integer F_AUX = 136;  // 24 bits
    localparam integer F_AUX_STRIDE = 160;  // 16 bits
    localparam integer F_ENTRY = 176;  // 16 bits
    localparam integer F_SF = 192;  // 16 bits
    localparam integer F_NF = 208;  // 16 bits
    localparam integer F_M0 = 224;  // 32 bits
    localparam integer F_S0 = 256;  // 8 bits
    localparam integer F_M1 = 264;  // 32 bits
    localparam integer F_S1 = 296;  // 8 bits
    localparam integer F_EPS = 304;  // 48 bits
    localparam integer F_PMAX = 352;  // 8 bits
    localparam integer F_BEATS = 360;  // 16 bits
    localparam integer F_PAIR = 376;  // 8 bits
    localparam [3:0] K_END = 4'd0, K_INPUT = 4'd1, K_LINEAR = 4'd2, K_LN = 4'd3, K_FILLK = 4'd4,
                     K_FILLV = 4'd5, K_XCOPY = 4'd6;
    localparam [3:0] S_BM = 4'd0, S_GELU = 4'd1, S_ADD = 4'd2, S_OUT = 4'd3, S_SOFTMAX = 4'd4;
    localparam integer PB = (NOPS > 1) ? $clog2(NOPS) : 1;
    localparam integer GB = (GELU_DEPTH > 1) ? $clog2(GELU_DEPTH) : 1;
    function reads_of(input [3:0] k);
        reads_of = (k == K_LINEAR) || (k == K_LN) || (k == K_FILLK) || (k == K_FILLV) ||
                   (k == K_XCOPY);
    endfunction
    function [16:0] chunk_of(input [3:0] k);
        chunk_of = (k == K_LINEAR || k == K_FILLK) ? SIMD[16:0] :
                   (k == K_FILLV) ? PE[16:0] : LANES[16:0];  // LN and XCOPY: whole words
    endfunction

    // ------------------------------------------------------------------------------------------
    // Sequencer: fetch, start the op's units, wait for the op to finish, next.
    reg [OP_BITS-1:0] op;
    // The op's last row / fold indices, loaded with it: the counters compare against a
    // register rather than through a subtractor (logic depth, docs/vit.md "Timing").
    reg [15:0] rows_last, sf_last, nf_last;
    // The op's kind and sink decoded into flags, loaded with it as well: every unit's
    // handshake reads a flag register instead of a 4-bit compare.
    reg is_lin, is_ln, is_fillk, is_fillv, is_xcopy, is_input;  // is_lin: the engine runs
    reg to_bm, to_gelu, to_add, to_out, to_sm;  // a LINEAR or LN op's sink
    reg        reads, from_xm;  // the reader runs, from XM (else BM)
    reg [16:0] ch;              // its chunk: elements a read
    /* verilator lint_off UNUSEDSIGNAL */
    wire [15:0] f_rows = op[F_ROWS +: 16];
    wire [23:0] f_src = op[F_SRC +: 24];
    wire [15:0] f_src_stride = op[F_SRC_STRIDE +: 16];
    wire [15:0] f_src_len = op[F_SRC_LEN +: 16];
    wire [23:0] f_dst = op[F_DST +: 24];
    wire [15:0] f_dst_stride = op[F_DST_STRIDE +: 16];
    wire [15:0] f_dst_len = op[F_DST_LEN +: 16];
    wire [23:0] f_aux = op[F_AUX +: 24];
    wire [15:0] f_aux_stride = op[F_AUX_STRIDE +: 16];
    wire [15:0] f_entry = op[F_ENTRY +: 16];
    wire [15:0] f_sf = op[F_SF +: 16];
    wire [15:0] f_nf = op[F_NF +: 16];
    wire [31:0] f_m0 = op[F_M0 +: 32];
    wire [7:0]  f_s0 = op[F_S0 +: 8];
    wire [31:0] f_m1 = op[F_M1 +: 32];
    wire [7:0]  f_s1 = op[F_S1 +: 8];
    wire [47:0] f_eps = op[F_EPS +: 48];
    wire [7:0]  f_pmax = op[F_PMAX +: 8];
    wire [15:0] f_beats = op[F_BEATS +: 16];
    wire        f_pair = op[F_PAIR];  // the engine takes the rows in pairs (vitfpga_mvu PAIR)
    /* verilator lint_on UNUSEDSIGNAL */

    // The program ROM is read one op ahead: while op pc runs, `ahead` loads op pc + 1, so the
    // clock after an op finishes starts the next one (ST_NEXT) with no decode cycle between
    // them. The read address is registered (logic depth: a long program's ROM maps to logic),
    // so `ahead` holds op pc + 1 from the op's third clock; an op ends on its second at the
    // earliest, and ST_NEXT comes a clock after that. Outside ST_RUN the address is 0: the
    // first op of an image is in `ahead` by the time ST_NEXT needs it (ST_IDLE and ST_REWIND
    // take the two clocks).
    localparam [1:0] ST_IDLE = 2'd0, ST_NEXT = 2'd1, ST_REWIND = 2'd2, ST_RUN = 2'd3;
    reg [1:0]    st;
    reg [PB-1:0] pc;
    reg [31:0]   images_left;
    reg          op_start;  // the op's first cycle: units latch their configuration
    wire         op_done;
    wire         run = (st == ST_RUN);
    reg          loading;   // a weight load, run by the engine alone
    wire         load_go = (st == ST_IDLE) && !loading && start && load;
    wire         mvu_done;
    assign idle = (st == ST_IDLE) && !loading;
    reg  [OP_BITS-1:0] ahead;
    reg  [PB-1:0]      ahead_addr;
    always @(posedge clk) ahead_addr <= run ? pc + 1'b1 : {PB{1'b0}};
    // The op ROM: a long program in block RAM (OPS_BLOCK), read through the registered address
    // and into `ahead` as the block RAM's own registers; left to synthesis, a ROM of hundreds of
    // words became a chain of LUTs deeper than the clock allows (docs/vit.md "Timing").
    generate
        if (OPS_BLOCK != 0) begin : g_ops_block
            (* rom_style = "block" *) reg [OP_BITS-1:0] prog [0:NOPS-1];
            initial $readmemh(OPS_FILE, prog);
            always @(posedge clk) ahead <= prog[ahead_addr];
        end else begin : g_ops
            reg [OP_BITS-1:0] prog [0:NOPS-1];
            initial $readmemh(OPS_FILE, prog);
            always @(posedge clk) ahead <= prog[ahead_addr];
        end
    endgenerate

    always @(posedge clk) begin
        if (!rst_n) begin
            st <= ST_IDLE;
            done <= 1'b0;
            op_start <= 1'b0;
            pc <= {PB{1'b0}};
            images_left <= 32'd0;
            loading <= 1'b0;
        end else begin
            done <= 1'b0;
            op_start <= 1'b0;
            if (load_go) loading <= 1'b1;
            if (loading && mvu_done) begin
                loading <= 1'b0;
                done <= 1'b1;
            end
            case (st)
                ST_IDLE: if (start && !load && !loading) begin
                    if (images == 32'd0) done <= 1'b1;
                    else begin
                        images_left <= images;
                        pc <= {PB{1'b0}};
                        st <= ST_NEXT;
                    end
                end
                ST_NEXT: begin
                    op <= ahead;
                    rows_last <= ahead[F_ROWS +: 16] - 16'd1;
                    sf_last <= ahead[F_SF +: 16] - 16'd1;
                    nf_last <= ahead[F_NF +: 16] - 16'd1;
                    // the reader's chunks a row: FILLV's NF, an LN op's row in words of LANES
                    // elements (the LayerNorm takes them in parts), everything else's SF
                    nch_last <= (ahead[F_KIND +: 4] == K_FILLV) ? ahead[F_NF +: 16] - 16'd1 :
                                (ahead[F_KIND +: 4] == K_LN) ?
                                (ahead[F_SRC_LEN +: 16] - 16'd1) >> $clog2(LANES) :
                                ahead[F_SF +: 16] - 16'd1;
                    is_lin <= ahead[F_KIND +: 4] == K_LINEAR || ahead[F_KIND +: 4] == K_LN;
                    is_ln <= ahead[F_KIND +: 4] == K_LN;
                    is_fillk <= ahead[F_KIND +: 4] == K_FILLK;
                    is_fillv <= ahead[F_KIND +: 4] == K_FILLV;
                    is_xcopy <= ahead[F_KIND +: 4] == K_XCOPY;
                    is_input <= ahead[F_KIND +: 4] == K_INPUT;
                    to_bm <= ahead[F_SINK +: 4] == S_BM;
                    to_gelu <= ahead[F_SINK +: 4] == S_GELU;
                    to_add <= ahead[F_SINK +: 4] == S_ADD;
                    to_out <= ahead[F_SINK +: 4] == S_OUT;
                    to_sm <= ahead[F_SINK +: 4] == S_SOFTMAX;
                    reads <= reads_of(ahead[F_KIND +: 4]);
                    from_xm <= ahead[F_KIND +: 4] == K_LN || ahead[F_KIND +: 4] == K_XCOPY;
                    ch <= chunk_of(ahead[F_KIND +: 4]);
                    if (ahead[F_KIND +: 4] == K_END) begin
                        pc <= {PB{1'b0}};
                        if (images_left == 32'd1) begin
                            done <= 1'b1;
                            st <= ST_IDLE;
                        end else begin
                            images_left <= images_left - 32'd1;
                            st <= ST_REWIND;
                        end
                    end else begin
                        op_start <= 1'b1;
                        st <= ST_RUN;
                    end
                end
                ST_REWIND: st <= ST_NEXT;  // `ahead` reads op 0 of the next image
                default: if (op_done && !op_start) begin
                    pc <= pc + 1'b1;
                    st <= ST_NEXT;
                end
            endcase
        end
    end

    // ------------------------------------------------------------------------------------------
    // Memories
    wire              xm_rd_en, xm_wr_en, bm_rd_en, bm_wr_en;
    wire [23:0]       xm_rd_addr, xm_wr_addr, bm_rd_addr, bm_wr_addr;
    wire [LANES*16-1:0] xm_rd_data, xm_wr_data;
    wire [LANES*8-1:0]  bm_rd_data, bm_wr_data;
    wire [LANES-1:0]  xm_wr_mask, bm_wr_mask;
    vitfpga_vmem #(.LANES(LANES), .ALIGN(XM_ALIGN), .EW(16), .WORDS(XWORDS), .INIT(1),
                   .EVEN_FILE(XM_EVEN_FILE), .ODD_FILE(XM_ODD_FILE)) u_xm (
        .clk(clk), .rd_en(xm_rd_en), .rd_addr(xm_rd_addr), .rd_data(xm_rd_data),
        .wr_en(xm_wr_en), .wr_addr(xm_wr_addr), .wr_data(xm_wr_data), .wr_mask(xm_wr_mask));
    vitfpga_vmem #(.LANES(LANES), .ALIGN(BM_ALIGN), .EW(8), .WORDS(BWORDS), .INIT(0),
                   .STYLE(BM_STYLE)) u_bm (
        .clk(clk), .rd_en(bm_rd_en), .rd_addr(bm_rd_addr), .rd_data(bm_rd_data),
        .wr_en(bm_wr_en), .wr_addr(bm_wr_addr), .wr_data(bm_wr_data), .wr_mask(bm_wr_mask));

    // ------------------------------------------------------------------------------------------
    // Reader: rows of `src_len` elements from `src`, `src_stride` apart, in chunks of `ch`.
    reg  [15:0] nch_last;  // a row's last chunk: loaded with the op (below)
    reg         g_active;
    reg [15:0]  g_row, g_ch;
    reg [23:0]  g_rowaddr, g_addr;
    reg signed [17:0] g_rem;  // elements of the row left from this chunk on
    // The memories answer a read two clocks after it (vitfpga_vmem.v): r_v and r_mask follow
    // it, and a read issues while the FIFO has room for it and both in flight.
    reg [3:0]   fcount;
    reg         r_v1, r_v;    // a read issued one, two clocks ago: its data arrives with r_v
    reg [LANES-1:0] r_mask1, r_mask;
    wire        g_issue = run && !op_start && g_active &&
                          ({1'b0, fcount} + {4'b0, r_v1} + {4'b0, r_v} < 5'd7);
    wire        g_row_end = (g_ch == nch_last);
    integer li;
    reg [LANES-1:0] g_mask;
    always @(*) begin
        for (li = 0; li < LANES; li = li + 1)
            g_mask[li] = ($signed({1'b0, li[16:0]}) < g_rem) && (li < ch);
    end
    always @(posedge clk) begin
        if (!rst_n) begin
            g_active <= 1'b0;
            r_v1 <= 1'b0;
            r_v <= 1'b0;
        end else begin
            r_v1 <= g_issue;
            r_v <= r_v1;
            if (g_issue) r_mask1 <= g_mask;
            r_mask <= r_mask1;
            if (op_start) begin
                g_active <= reads && (f_rows != 16'd0);
                g_row <= 16'd0;
                g_ch <= 16'd0;
                g_rowaddr <= f_src;
                g_addr <= f_src;
                g_rem <= {2'b0, f_src_len};
            end else if (g_issue) begin
                if (g_row_end) begin
                    g_ch <= 16'd0;
                    g_row <= g_row + 16'd1;
                    g_rowaddr <= g_rowaddr + {8'd0, f_src_stride};
                    g_addr <= g_rowaddr + {8'd0, f_src_stride};
                    g_rem <= {2'b0, f_src_len};
                    if (g_row == rows_last) g_active <= 1'b0;
                end else begin
                    g_ch <= g_ch + 16'd1;
                    g_addr <= g_addr + {7'd0, ch};
                    g_rem <= g_rem - $signed({1'b0, ch});
                end
            end
        end
    end

    // The arriving chunk as int16 lanes (BM's int8 sign-extended), zero outside the mask.
    reg [LANES*16-1:0] r_data;
    integer ri;
    always @(*) begin
        for (ri = 0; ri < LANES; ri = ri + 1) begin
            if (!r_mask[ri]) r_data[ri*16 +: 16] = 16'd0;
            else if (from_xm) r_data[ri*16 +: 16] = xm_rd_data[ri*16 +: 16];
            else r_data[ri*16 +: 16] = {{8{bm_rd_data[ri*8 + 7]}}, bm_rd_data[ri*8 +: 8]};
        end
    end

    // FIFO of read chunks: 8 deep, so that reads issue every clock with two in flight
    reg [LANES*16-1:0] fdata [0:7];
    reg [LANES-1:0]    fmask [0:7];
    reg [2:0]          fhead, ftail;
    wire               fempty = (fcount == 4'd0);
    wire [LANES*16-1:0] c_data = fdata[fhead];
    wire [LANES-1:0]   c_mask = fmask[fhead];
    wire               c_pop;
    always @(posedge clk) begin
        if (!rst_n || op_start) begin
            fhead <= 3'd0;
            ftail <= 3'd0;
            fcount <= 4'd0;
        end else begin
            if (r_v) begin
                fdata[ftail] <= r_data;
                fmask[ftail] <= r_mask;
                ftail <= ftail + 3'd1;
            end
            if (c_pop) fhead <= fhead + 3'd1;
            fcount <= fcount + {3'b0, r_v} - {3'b0, c_pop};
        end
    end

    // ------------------------------------------------------------------------------------------
    // The matmul engine
    wire [SIMD*8-1:0]    mvu_in_data;
    wire                 mvu_in_valid = loading ? in_valid :
                                        run && is_lin && (is_ln ? lp_any : !fempty);
    wire                 mvu_in_ready;
    wire [PE*8-1:0]      mvu_out_data;
    wire [PE*32-1:0]     mvu_out_raw;
    wire                 mvu_out_valid, mvu_out_last, mvu_out_ready;
    wire                 mvu_idle;
    wire                 mvu_out_tok;  // the beat's row within its pair (PAIR ops)
    reg                  opw_en;
    reg [15:0]           opw_addr;
    reg [PE*SIMD-1:0]    opw_be;
    reg [PE*SIMD*8-1:0]  opw_data;
    genvar gi;
    generate
        for (gi = 0; gi < SIMD; gi = gi + 1) begin : g_in
            assign mvu_in_data[gi*8 +: 8] = loading ? in_data[gi*8 +: 8] :
                                            is_ln ? lp_head[gi*8 +: 8] : c_data[gi*16 +: 8];
        end
    endgenerate
    /* verilator lint_off PINCONNECTEMPTY */
    vitfpga_mvu #(
        .PE(PE), .SIMD(SIMD), .WBITS(WBITS), .LANE_BITS(LANE_BITS), .OFFSET_STEP(OFFSET_STEP),
        .STRADDLE(STRADDLE), .SHIFT_BITS(SHIFT_BITS), .WMASK(WMASK), .KINDS(KINDS), .NM_N(NM_N), .NM_M(NM_M),
        .CB_BITS(CB_BITS), .NLAYERS(NENTRIES), .ROM_DEPTH(ROM_DEPTH),
        .RAM_DEPTH(RAM_DEPTH), .CDEPTH(CDEPTH), .MAXBEATS(MAXSF), .OPDEPTH(OPDEPTH),
        .OP_STYLE(OP_STYLE), .PACK(PACK), .PG(PG), .PAIR(PAIR),
        .WEIGHT_FILE(WEIGHT_FILE), .BIAS_FILE(BIAS_FILE), .MULT_FILE(MULT_FILE),
        .SHIFT_FILE(SHIFT_FILE), .PROGRAM_FILE(PROGRAM_FILE), .CODEBOOK_FILE(CODEBOOK_FILE)
    ) u_mvu (
        .clk(clk), .rst_n(rst_n),
        .start((op_start && is_lin) || load_go),
        .rows(load_go ? images : {16'd0, f_rows}),
        .layer({16'd0, f_entry}), .load(load_go), .idle(mvu_idle), .done(mvu_done),
        .in_data(mvu_in_data), .in_valid(mvu_in_valid), .in_ready(mvu_in_ready),
        .out_data(mvu_out_data), .out_valid(mvu_out_valid), .out_last(mvu_out_last),
        .out_ready(mvu_out_ready),
        .opw_en(opw_en), .opw_addr(opw_addr), .opw_be(opw_be), .opw_data(opw_data),
        .out_raw(mvu_out_raw), .out_tok(mvu_out_tok)
    );
    /* verilator lint_on PINCONNECTEMPTY */

    // ------------------------------------------------------------------------------------------
    // LayerNorm and softmax units
    // The reader fetches an LN op's XM rows in chunks of LANES elements, so that XM's
    // addresses stay multiples of LANES and of PE (vitfpga_vmem.v ALIGN: at SIMD = LANES no
    // rotation at all); the LayerNorm takes part ln_k of the FIFO's head, LN_L elements a
    // clock, and the head pops after its last part that holds elements of the row.
    localparam integer LN_P = LANES / LN_L;
    localparam integer LNPB = (LN_P > 1) ? $clog2(LN_P) : 1;
    reg  [LNPB-1:0]    ln_k;
    wire               ln_more;  // the head holds a further part of the row after ln_k
    // (a multiplexer of the parts' first mask bits by ln_k, not a compare per part: this feeds
    // the FIFO's pop, whose users' counters sit a few levels further on)
    generate
        if (LN_P > 1) begin : g_ln_parts
            wire [LN_P-1:0] next_valid;  // bit k: part k + 1 of the head holds elements
            genvar lq;
            for (lq = 0; lq < LN_P - 1; lq = lq + 1) begin : g_part
                assign next_valid[lq] = c_mask[(lq + 1) * LN_L];
            end
            assign next_valid[LN_P-1] = 1'b0;
            assign ln_more = next_valid[ln_k];
        end else begin : g_ln_whole
            assign ln_more = 1'b0;
        end
    endgenerate
    wire [LN_L*16-1:0] ln_in_data = c_data[ln_k*LN_L*16 +: LN_L*16];
    wire        ln_in_valid = run && is_ln && !fempty;
    wire        ln_in_ready, ln_idle, ln_done;
    wire        ln_take = ln_in_valid && ln_in_ready;
    always @(posedge clk) begin
        if (!rst_n || op_start) ln_k <= {LNPB{1'b0}};
        else if (ln_take) ln_k <= ln_more ? ln_k + 1'b1 : {LNPB{1'b0}};
    end
    wire [LN_L*8-1:0] ln_out_data;
    wire        ln_out_valid, ln_out_ready;
    vitfpga_layernorm_vec #(.DMAX(LN_DMAX), .PDEPTH(LN_PDEPTH), .L(LN_L), .GAMMA_FILE(GAMMA_FILE),
                        .BETA_FILE(BETA_FILE)) u_ln (
        .clk(clk), .rst_n(rst_n), .start(op_start && is_ln), .d(f_src_len),
        .rows({16'd0, f_rows}), .pbase(f_aux_stride), .mult(f_m0), .shift(f_s0),
        .eps({16'd0, f_eps}), .idle(ln_idle), .done(ln_done),
        .in_data(ln_in_data), .in_valid(ln_in_valid), .in_ready(ln_in_ready),
        .out_data(ln_out_data), .out_valid(ln_out_valid), .out_ready(ln_out_ready));

    // The LayerNorm's outputs into engine beats (LN ops): LPR = SIMD/LN_L parts a beat, written
    // into `lp_beat` as they come; a beat is complete at its last part or the row's last (the
    // lanes past the row zero), then `beats` minus the row's beats of zeros follow. Complete
    // beats queue in a 4-deep FIFO the engine drains. Its room is a register: at most one push
    // a clock, so room for two after an edge is room for the next push whatever pops.
    localparam integer LPR = SIMD / LN_L;
    localparam integer LPB = (LPR > 1) ? $clog2(LPR) : 1;
    reg  [SIMD*8-1:0]  lp_beat;
    reg  [LPB-1:0]     lp_k;        // the next part's place in the beat
    reg  [15:0]        lp_c;        // the next part's place in the row (LN beats)
    reg                lp_c_end;    // ... is the row's last (lp_c == sf_last, registered)
    reg  [15:0]        lp_b;        // engine beats of the row pushed so far
    reg                lp_pad;      // the row's elements are in; zero beats follow
    reg                lp_room;
    wire [2:0]         lp_count;
    wire [SIMD*8-1:0]  lp_head;
    wire               lp_any = (lp_count != 3'd0);
    wire               lp_take = ln_out_valid && ln_out_ready;
    wire               lp_end = lp_take && ((lp_k == LPR - 1) || lp_c_end);
    wire               lp_zero = lp_pad && lp_room;
    wire               lp_push = lp_end || lp_zero;
    wire               lp_pop = is_ln && lp_any && mvu_in_ready;
    assign ln_out_ready = lp_room && !lp_pad;
    reg  [SIMD*8-1:0]  lp_next;     // lp_beat with this clock's part in its place
    integer lq;
    always @(*) begin
        lp_next = lp_beat;
        for (lq = 0; lq < LPR; lq = lq + 1)
            if (lq == lp_k) lp_next[lq*LN_L*8 +: LN_L*8] = ln_out_data;
        if (lp_zero) lp_next = {SIMD*8{1'b0}};
    end
    vitfpga_fifo #(.WIDTH(SIMD*8), .DEPTH(4)) u_lp (
        .clk(clk), .rst_n(rst_n), .clr(op_start), .push(lp_push), .wdata(lp_next),
        .pop(lp_pop), .head(lp_head), .count(lp_count));
    always @(posedge clk) begin
        if (!rst_n || op_start) begin
            lp_beat <= {SIMD*8{1'b0}};
            lp_k <= {LPB{1'b0}};
            lp_c <= 16'd0;
            lp_c_end <= (sf_last == 16'd0);
            lp_b <= 16'd0;
            lp_pad <= 1'b0;
            lp_room <= 1'b1;
        end else begin
            lp_room <= ({1'b0, lp_count} + {3'd0, lp_push} - {3'd0, lp_pop}) <= 4'd2;
            if (lp_take) begin
                lp_beat <= lp_end ? {SIMD*8{1'b0}} : lp_next;
                lp_k <= lp_end ? {LPB{1'b0}} : lp_k + 1'b1;
                lp_c <= lp_c_end ? 16'd0 : lp_c + 16'd1;
                lp_c_end <= lp_c_end ? (sf_last == 16'd0) : (lp_c + 16'd1 == sf_last);
            end
            if (lp_push) begin
                // the row ends with its last elements' beat if that is its `beats`th, else
                // with the last zero beat
                if (lp_b + 16'd1 == f_beats) begin
                    lp_b <= 16'd0;
                    lp_pad <= 1'b0;
                end else begin
                    lp_b <= lp_b + 16'd1;
                    if (lp_take && lp_c_end) lp_pad <= 1'b1;
                end
            end
        end
    end

    // Raw scores leave the engine PE lanes a beat, a row of t scores in ceil(t/PE) beats (the
    // last one padded). The softmax unit takes SM_L of them a clock (SM_L divides PE): with
    // SM_L < PE a gearbox hands each engine beat on in PE/SM_L parts, a row in ceil(t/SM_L)
    // parts, dropping the parts of a row's last beat that hold only padding. Fewer softmax
    // lanes than PE trade softmax time for DSPs (each lane is several wide products).
    localparam integer GR = PE / SM_L;                 // parts of an engine beat
    localparam integer GKB = (GR > 1) ? $clog2(GR) : 1;
    localparam integer GLB = $clog2(SM_L);
    wire               sm_in_ready, sm_idle, sm_done;
    wire [SM_L*32-1:0] sm_in_data;
    wire               sm_in_valid;
    wire               gb_ready;  // the gearbox takes the engine's beat
    generate
        if (GR == 1) begin : g_sm_direct
            assign sm_in_data = mvu_out_raw;
            assign sm_in_valid = run && is_lin && to_sm && mvu_out_valid;
            assign gb_ready = sm_in_ready;
        end else begin : g_sm_gearbox
            // Every flag the handshake reads is a register (gb_ready is one LUT from them).
            reg [PE*32-1:0] gb_data;
            reg             gb_full;
            reg [GKB-1:0]   gb_k;         // the part on offer
            reg             gb_k_last;    // ... is its beat's last
            reg [15:0]      gb_left;      // parts of the row after the one on offer
            reg             gb_row_end;   // ... none: the part on offer ends the row
            reg [15:0]      gb_c_last;    // ceil(t/SM_L) - 1, loaded with the op
            reg             gb_one;       // a row is one part (t <= SM_L)
            localparam [GKB-1:0] GK_PEN = GR - 2;  // the index before a beat's last part
            wire            take = gb_full && sm_in_ready;
            wire            beat_end = gb_k_last || gb_row_end;
            assign gb_ready = !gb_full || (take && beat_end);
            assign sm_in_data = gb_data[gb_k * SM_L * 32 +: SM_L * 32];
            assign sm_in_valid = run && gb_full;
            always @(posedge clk) begin
                if (!rst_n || op_start) begin
                    gb_full <= 1'b0;
                    gb_k <= {GKB{1'b0}};
                    gb_k_last <= 1'b0;
                    gb_c_last <= (f_dst_len - 16'd1) >> GLB;  // t >= 1
                    gb_left <= (f_dst_len - 16'd1) >> GLB;
                    gb_one <= f_dst_len <= SM_L[15:0];
                    gb_row_end <= f_dst_len <= SM_L[15:0];
                end else begin
                    if (take) begin
                        gb_k <= gb_k + 1'b1;
                        gb_k_last <= (gb_k == GK_PEN);
                        gb_left <= gb_row_end ? gb_c_last : gb_left - 16'd1;
                        gb_row_end <= gb_row_end ? gb_one : (gb_left == 16'd1);
                        if (beat_end) gb_full <= 1'b0;
                    end
                    if (run && is_lin && to_sm && mvu_out_valid && gb_ready) begin
                        gb_data <= mvu_out_raw;
                        gb_full <= 1'b1;
                        gb_k <= {GKB{1'b0}};
                        gb_k_last <= 1'b0;
                    end
                end
            end
        end
    endgenerate
    wire [SM_L*8-1:0] sm_out_data;
    wire              sm_out_valid;
    vitfpga_softmax_vec #(.TMAX(SM_TMAX), .L(SM_L), .EXP_BLOCK(EXP_BLOCK),
                         .EXP_FILE(EXP_FILE)) u_sm (
        .clk(clk), .rst_n(rst_n), .start(op_start && is_lin && to_sm),
        .t(f_dst_len), .rows({16'd0, f_rows}), .mult(f_m0), .shift(f_s0), .prob_max(f_pmax),
        .idle(sm_idle), .done(sm_done), .in_data(sm_in_data), .in_valid(sm_in_valid),
        .in_ready(sm_in_ready), .out_data(sm_out_data), .out_valid(sm_out_valid),
        .out_ready(1'b1));

    // ------------------------------------------------------------------------------------------
    // Engine output sinks: row/fold counters give the write address and the lanes to keep.
    // A PAIR op's beats come a fold of the first row of a pair, then of the second
    // (mvu_out_tok): each row of a pair has its own counters, rows two strides apart.
    wire        beat = run && is_lin && mvu_out_valid && mvu_out_ready;
    assign mvu_out_ready = to_out ? out_ready : to_sm ? gb_ready : 1'b1;
    reg [15:0]  so_nf [0:1];
    reg [23:0]  so_row [0:1], so_ad [0:1], so_xrow [0:1], so_xad [0:1];
    reg signed [17:0] so_rm [0:1];
    reg [23:0]  so_step, so_xstep;  // the next row's distance: a stride, two for PAIR ops
    wire        so_k = mvu_out_tok;
    wire [23:0] so_addr = so_ad[so_k], so_xaddr = so_xad[so_k];
    wire signed [17:0] so_rem = so_rm[so_k];
    reg [LANES-1:0] so_mask;
    integer mi, sk;
    always @(*) begin
        for (mi = 0; mi < LANES; mi = mi + 1)
            so_mask[mi] = (mi < PE) && ($signed({1'b0, mi[16:0]}) < so_rem);
    end
    always @(posedge clk) begin
        if (op_start) begin
            so_step <= f_pair ? {7'd0, f_dst_stride, 1'b0} : {8'd0, f_dst_stride};
            so_xstep <= f_pair ? {7'd0, f_aux_stride, 1'b0} : {8'd0, f_aux_stride};
            for (sk = 0; sk < 2; sk = sk + 1) begin
                so_nf[sk] <= 16'd0;
                so_row[sk] <= (sk == 0) ? f_dst : f_dst + {8'd0, f_dst_stride};
                so_ad[sk] <= (sk == 0) ? f_dst : f_dst + {8'd0, f_dst_stride};
                so_xrow[sk] <= (sk == 0) ? f_aux : f_aux + {8'd0, f_aux_stride};
                so_xad[sk] <= (sk == 0) ? f_aux : f_aux + {8'd0, f_aux_stride};
                so_rm[sk] <= {2'b0, f_dst_len};
            end
        end else if (beat) begin
            if (so_nf[so_k] == nf_last) begin
                so_nf[so_k] <= 16'd0;
                so_row[so_k] <= so_row[so_k] + so_step;
                so_ad[so_k] <= so_row[so_k] + so_step;
                so_xrow[so_k] <= so_xrow[so_k] + so_xstep;
                so_xad[so_k] <= so_xrow[so_k] + so_xstep;
                so_rm[so_k] <= {2'b0, f_dst_len};
            end else begin
                so_nf[so_k] <= so_nf[so_k] + 16'd1;
                so_ad[so_k] <= so_ad[so_k] + PE[23:0];
                so_xad[so_k] <= so_xad[so_k] + PE[23:0];
                so_rm[so_k] <= so_rm[so_k] - PE[17:0];
            end
        end
    end

    // GELU: a synchronous table read per lane, written the next clock.
    // One table with PE read ports, kept in logic for Yosys: memory_libmap enumerates every
    // assignment of read ports to RAM port groups (exponential in the port count; PE = 16 exceeds
    // YoWASP's 4 GiB and traps) and picks logic for this table at any port count anyway.
    (* logic_block *) reg [7:0] gelu_rom [0:GELU_DEPTH-1];
    initial $readmemh(GELU_FILE, gelu_rom);
    reg [PE*8-1:0]  g_y;
    reg             g_v;
    reg [23:0]      g_waddr;
    reg [LANES-1:0] g_wmask;
    // A block's table starts at a multiple of 256 (vitfpga.hls.plan.program), so the index is
    // the table number beside the biased byte: no adder before the read.
    generate
        for (gi = 0; gi < PE; gi = gi + 1) begin : g_gelu
            wire [7:0]    byte_u = mvu_out_data[gi*8 +: 8] ^ 8'h80;
            wire [GB-1:0] idx;
            if (GB > 8) begin : g_tables
                assign idx = {f_aux[GB-1:8], byte_u};
            end else begin : g_table
                assign idx = byte_u[GB-1:0];
            end
            always @(posedge clk) begin
                if (beat) g_y[gi*8 +: 8] <= gelu_rom[idx];
            end
        end
    endgenerate
    always @(posedge clk) begin
        g_v <= beat && to_gelu;
        g_waddr <= so_addr;
        g_wmask <= so_mask;
    end

    // Residual add: y = sat16(round(a*M0 >> S0) + round(x*M1 >> S1)), x read from XM: the
    // engine's beat, held two clocks, and XM's read of the same row arrive together (stage 2),
    // then one vitfpga_rescale_add per lane, ADD_LAT clocks, then the write request
    // (a_v[ADD_END]).
    localparam integer ADD_LAT = 5;  // vitfpga_rescale_add.v
    localparam integer ADD_END = ADD_LAT + 1;
    reg [ADD_END:0]     a_v;  // a_v[0]: stage 1, a_v[k]: k clocks later
    reg [PE*8-1:0]      a_a1, a_a2;
    reg [23:0]          a_addr [0:ADD_END];
    reg [LANES-1:0]     a_mask [0:ADD_END];
    wire [LANES*16-1:0] a_y;
    integer ak;
    generate
        for (gi = 0; gi < PE; gi = gi + 1) begin : g_add
            vitfpga_rescale_add u_add (
                .clk(clk), .en(1'b1), .a(a_a2[gi*8 +: 8]), .x(xm_rd_data[gi*16 +: 16]),
                .m0(f_m0), .m1(f_m1), .s0(f_s0), .s1(f_s1), .y(a_y[gi*16 +: 16]));
        end
        if (LANES > PE) begin : g_add_pad
            assign a_y[LANES*16-1:PE*16] = {(LANES-PE)*16{1'b0}};
        end
    endgenerate
    always @(posedge clk) begin
        if (!rst_n) a_v <= {(ADD_END + 1){1'b0}};
        else a_v <= {a_v[ADD_END-1:0], beat && to_add};
        a_a1 <= mvu_out_data;
        a_a2 <= a_a1;
        a_addr[0] <= so_addr;
        a_mask[0] <= so_mask;
        for (ak = 1; ak <= ADD_END; ak = ak + 1) begin
            a_addr[ak] <= a_addr[ak-1];
            a_mask[ak] <= a_mask[ak-1];
        end
    end

    // Softmax outputs: a beat of SM_L elements a clock into BM, row by row; the row's last beat
    // writes only the lanes the row has left.
    wire        e_fire = run && is_lin && to_sm && sm_out_valid;
    localparam [16:0] E_N = SM_L;  // elements a beat
    reg signed [17:0] e_rem;  // elements of the row from this beat on
    reg [23:0]  e_row, e_addr;
    reg [LANES-1:0] e_mask;
    integer ei;
    always @(*) begin
        for (ei = 0; ei < LANES; ei = ei + 1)
            e_mask[ei] = ($signed({1'b0, ei[16:0]}) < e_rem) && (ei < E_N);
    end
    always @(posedge clk) begin
        if (op_start) begin
            e_rem <= {2'b0, f_dst_len};
            e_row <= f_dst;
            e_addr <= f_dst;
        end else if (e_fire) begin
            if (e_rem <= $signed({1'b0, E_N})) begin
                e_rem <= {2'b0, f_dst_len};
                e_row <= e_row + {8'd0, f_dst_stride};
                e_addr <= e_row + {8'd0, f_dst_stride};
            end else begin
                e_rem <= e_rem - $signed({1'b0, E_N});
                e_addr <= e_addr + {7'd0, E_N};
            end
        end
    end

    // ------------------------------------------------------------------------------------------
    // Consumers of the reader's FIFO besides the engine and LN: operand fills and XCOPY.
    wire fills = run && (is_fillk || is_fillv);
    wire xcopy = run && is_xcopy;
    assign c_pop = !fempty && ((mvu_in_valid && mvu_in_ready && !is_ln) ||
                               (ln_take && !ln_more) ||
                               fills || xcopy);
    reg [15:0] k_c, k_jlo, v_cc, v_jlo, v_jhi, x_c;
    reg [23:0] k_rowword, v_ccbase, x_row, x_addr;
    // A fill takes the popped chunk a clock later (f_v, f_data), so that the FIFO's pop logic
    // and the fill's counters never share a clock (logic depth).
    reg                f_v;
    reg [LANES*16-1:0] f_data;
    always @(posedge clk) begin
        f_v <= rst_n && !op_start && c_pop && fills;
        f_data <= c_data;
    end
    integer fp, fs;
    always @(posedge clk) begin
        opw_en <= 1'b0;
        if (op_start) begin
            k_c <= 16'd0;
            k_jlo <= 16'd0;
            k_rowword <= f_aux;
            v_cc <= 16'd0;
            v_ccbase <= 24'd0;
            v_jlo <= 16'd0;
            v_jhi <= 16'd0;
        end else if (f_v) begin
            opw_en <= 1'b1;
            opw_be <= {PE*SIMD{1'b0}};
            opw_data <= {PE*SIMD*8{1'b0}};
            if (is_fillk) begin
                // chunk k_c of token j = K[j][k_c*SIMD + s] -> word (j/PE)*SF + k_c, lane (j%PE)*SIMD + s
                opw_addr <= k_rowword[15:0] + k_c;
                for (fp = 0; fp < PE; fp = fp + 1) begin
                    if (fp == k_jlo) begin
                        for (fs = 0; fs < SIMD; fs = fs + 1) begin
                            opw_be[fp*SIMD + fs] <= 1'b1;
                            opw_data[(fp*SIMD + fs)*8 +: 8] <= f_data[fs*16 +: 8];
                        end
                    end
                end
                if (k_c == sf_last) begin
                    k_c <= 16'd0;
                    if (k_jlo == PE - 1) begin
                        k_jlo <= 16'd0;
                        k_rowword <= k_rowword + {8'd0, f_sf};
                    end else k_jlo <= k_jlo + 16'd1;
                end else k_c <= k_c + 16'd1;
            end else begin
                // chunk v_cc of token j = V[j][v_cc*PE + p] -> word aux + v_cc*SF + j/SIMD,
                // lane p*SIMD + j%SIMD (the operand is V transposed)
                opw_addr <= f_aux[15:0] + v_ccbase[15:0] + v_jhi;
                for (fp = 0; fp < PE; fp = fp + 1) begin
                    for (fs = 0; fs < SIMD; fs = fs + 1) begin
                        if (fs == v_jlo) begin
                            opw_be[fp*SIMD + fs] <= 1'b1;
                            opw_data[(fp*SIMD + fs)*8 +: 8] <= f_data[fp*16 +: 8];
                        end
                    end
                end
                if (v_cc == nf_last) begin
                    v_cc <= 16'd0;
                    v_ccbase <= 24'd0;
                    if (v_jlo == SIMD - 1) begin
                        v_jlo <= 16'd0;
                        v_jhi <= v_jhi + 16'd1;
                    end else v_jlo <= v_jlo + 16'd1;
                end else begin
                    v_cc <= v_cc + 16'd1;
                    v_ccbase <= v_ccbase + {8'd0, f_sf};
                end
            end
        end
    end
    always @(posedge clk) begin
        if (op_start) begin
            x_c <= 16'd0;
            x_row <= f_dst;
            x_addr <= f_dst;
        end else if (c_pop && xcopy) begin
            if (x_c == sf_last) begin
                x_c <= 16'd0;
                x_row <= x_row + {8'd0, f_dst_stride};
                x_addr <= x_row + {8'd0, f_dst_stride};
            end else begin
                x_c <= x_c + 16'd1;
                x_addr <= x_addr + LANES[23:0];
            end
        end
    end

    // INPUT: patch beats into BM rows of SF*SIMD elements.
    reg [15:0] i_c, i_r;
    reg [23:0] i_row, i_addr;
    reg        i_done;
    wire       i_fire = run && !op_start && is_input && in_valid && !i_done;
    assign in_ready = loading ? mvu_in_ready : run && !op_start && is_input && !i_done;
    always @(posedge clk) begin
        if (op_start) begin
            i_c <= 16'd0;
            i_r <= 16'd0;
            i_row <= f_dst;
            i_addr <= f_dst;
            i_done <= (f_rows == 16'd0);
        end else if (i_fire) begin
            if (i_c == sf_last) begin
                i_c <= 16'd0;
                i_r <= i_r + 16'd1;
                i_row <= i_row + {8'd0, f_dst_stride};
                i_addr <= i_row + {8'd0, f_dst_stride};
                if (i_r == rows_last) i_done <= 1'b1;
            end else begin
                i_c <= i_c + 16'd1;
                i_addr <= i_addr + SIMD[23:0];
            end
        end
    end

    // ------------------------------------------------------------------------------------------
    // Memory ports: one user each per op.
    assign xm_rd_en = (g_issue && from_xm) || (beat && to_add);
    assign xm_rd_addr = from_xm ? g_addr : so_xaddr;
    assign bm_rd_en = g_issue && !from_xm;
    assign bm_rd_addr = g_addr;

    wire   a_wr = a_v[ADD_END];
    assign xm_wr_en = a_wr || (c_pop && xcopy);
    assign xm_wr_addr = a_wr ? a_addr[ADD_END] : x_addr;
    assign xm_wr_data = a_wr ? a_y : c_data;
    assign xm_wr_mask = a_wr ? a_mask[ADD_END] : c_mask;

    reg [LANES*8-1:0] bm_data;
    reg [23:0]        bm_addr;
    reg [LANES-1:0]   bm_mask;
    reg               bm_en;
    integer bi;
    always @(*) begin
        bm_en = 1'b0;
        bm_addr = so_addr;
        bm_data = {LANES*8{1'b0}};
        bm_mask = {LANES{1'b0}};
        if (i_fire) begin
            bm_en = 1'b1;
            bm_addr = i_addr;
            bm_data[SIMD*8-1:0] = in_data;
            bm_mask[SIMD-1:0] = {SIMD{1'b1}};
        end else if (e_fire) begin
            bm_en = 1'b1;
            bm_addr = e_addr;
            bm_data[SM_L*8-1:0] = sm_out_data;
            bm_mask = e_mask;
        end else if (g_v) begin
            bm_en = 1'b1;
            bm_addr = g_waddr;
            bm_data[PE*8-1:0] = g_y;
            bm_mask = g_wmask;
        end else if (beat && to_bm) begin
            bm_en = 1'b1;
            bm_addr = so_addr;
            bm_data[PE*8-1:0] = mvu_out_data;
            bm_mask = so_mask;
        end
        for (bi = 0; bi < LANES; bi = bi + 1) if (bi >= PE && !i_fire && !e_fire) bm_mask[bi] = 1'b0;
    end
    assign bm_wr_en = bm_en;
    assign bm_wr_addr = bm_addr;
    assign bm_wr_data = bm_data;
    assign bm_wr_mask = bm_mask;

    // ------------------------------------------------------------------------------------------
    // Output stream: the head's beats; TLAST on the final beat of the final image.
    assign out_data = mvu_out_data;
    assign out_valid = run && is_lin && to_out && mvu_out_valid;
    assign out_last = mvu_out_last && (images_left == 32'd1);

    // ------------------------------------------------------------------------------------------
    // When is an op finished? After its unit's done and the sink's last write has landed: the
    // memories register a write on entry (vitfpga_vmem.v), one clock; the add sink's request
    // comes ADD_END + 2 clocks after its last beat, every other sink's within one.
    localparam [3:0] DRAIN = 4'd2, DRAIN_ADD = ADD_END[3:0] + 4'd3;
    reg       unit_done;  // the op's last unit reported done
    reg [3:0] drain;
    wire      mvu_side = is_lin && !to_sm;
    always @(posedge clk) begin
        if (!rst_n || op_start) begin
            unit_done <= 1'b0;
            drain <= 4'd0;
        end else begin
            if ((mvu_side && mvu_done) || (is_lin && to_sm && sm_done) ||
                (is_input && i_done) ||
                ((fills || xcopy) && !g_active && fempty && !r_v1 && !r_v && !f_v))
                unit_done <= 1'b1;
            if (unit_done && drain != DRAIN_ADD) drain <= drain + 4'd1;
        end
    end
    assign op_done = unit_done && (drain == ((to_add && is_lin) ? DRAIN_ADD
                                                                                : DRAIN));
endmodule
