`timescale 1ns/1ps
// Simple dual-port RAM with per-lane write enables: LANES lanes of EW bits a word, one write
// port (lane i written where mask[i] is set) and one synchronous read port with an enable.
//
// STYLE places the memory where the planner did (hls/plan/whole.py, activation placement):
// 1 asks synthesis for URAM288 (`ram_style = "ultra"`), 2 for LUT RAM ("distributed"), 0 leaves
// the choice to synthesis, which picks block RAM at the depths the planner counts as block RAM.
// 3 is LUT RAM on UltraScale+ at up to 64 words: a lane's low EW-1 bits inferred (one RAM64M8
// holds 7 bits of 64 words in 8 LUTs) and its top bit an instantiated RAM64X1D (2 LUTs), an
// int8 lane in 10 LUTs where inference takes two RAM64M8, 16 (Yosys builds a one-bit memory as
// a RAM64M8 too). On 7-series (RAM64M: 3 bits in 4 LUTs) it would cost more, so the planner
// asks for it on UltraScale+ only; deeper than 64 words (one RAM64X1D) it falls back to 2.
// The attribute cannot take a parameter's value, hence one generate branch per style. URAM
// holds zeros at power-up and cannot be initialised, so a URAM memory is written before it is
// read; only STYLE 0 takes INIT.
//
// Without INIT the word is split into memories of CHUNK lanes, each with its own masked write:
// one wide memory with a write statement per lane costs Yosys's `proc` passes a full-width
// enable per lane (512 lanes of a 4096-bit operand buffer did not finish in 40 minutes), while
// chunks cost the same per lane at their own width. The primitives are unchanged: a LUT RAM
// primitive has one write enable, so LUT RAM takes a lane a memory; block RAM and URAM have
// eight byte enables a 64-bit word, so they take eight lanes a memory.
module vitfpga_lane_ram #(
    parameter integer LANES = 4,
    parameter integer EW = 8,
    parameter integer DEPTH = 64,
    parameter integer STYLE = 0,  // 0 synthesis's choice, 1 URAM288, 2 LUT RAM, 3 LUT RAM split
    parameter integer INIT = 0,       // 1: load from FILE (STYLE 0 only)
    parameter FILE = "lane_ram.mem"
) (
    input  wire                                      clk,
    input  wire                                      wr_en,
    input  wire [((DEPTH > 1) ? $clog2(DEPTH) : 1)-1:0] wr_addr,
    input  wire [LANES*EW-1:0]                       wr_data,
    input  wire [LANES-1:0]                          wr_mask,
    input  wire                                      rd_en,
    input  wire [((DEPTH > 1) ? $clog2(DEPTH) : 1)-1:0] rd_addr,
    output wire [LANES*EW-1:0]                       rd_data
);
    // An initialised memory is one array, as $readmemh fills it.
    localparam integer SPLIT = (STYLE == 3 && DEPTH <= 64 && EW > 1) ? 1 : 0;
    localparam integer LUTRAM = (STYLE == 2 || (STYLE == 3 && SPLIT == 0)) ? 1 : 0;
    localparam integer CHUNK = (INIT != 0) ? LANES : (LUTRAM != 0 || SPLIT != 0) ? 1 : 8;
    localparam integer NCH = (LANES + CHUNK - 1) / CHUNK;
    /* verilator lint_off UNUSEDSIGNAL */
    integer i;  // unused where every lane is split (STYLE 3)
    /* verilator lint_on UNUSEDSIGNAL */
    genvar c;
    generate
        for (c = 0; c < NCH; c = c + 1) begin : g_c
            localparam integer L0 = c * CHUNK;
            localparam integer NLC = (LANES - L0 < CHUNK) ? LANES - L0 : CHUNK;
            wire [NLC*EW-1:0] d = wr_data[L0*EW +: NLC*EW];
            wire [NLC-1:0]    m = wr_mask[L0 +: NLC];
            reg  [NLC*EW-1:0] q;
            assign rd_data[L0*EW +: NLC*EW] = q;
            if (STYLE == 1) begin : g_ultra
                (* ram_style = "ultra" *) reg [NLC*EW-1:0] mem [0:DEPTH-1];
`ifndef SYNTHESIS
                // synthesis translate_off
                // URAM powers up as zeros; a simulator's array starts as X.
                integer z;
                initial for (z = 0; z < DEPTH; z = z + 1) mem[z] = {NLC*EW{1'b0}};
                // synthesis translate_on
`endif
                always @(posedge clk) begin
                    if (wr_en) begin
                        for (i = 0; i < NLC; i = i + 1)
                            if (m[i]) mem[wr_addr][i*EW +: EW] <= d[i*EW +: EW];
                    end
                    if (rd_en) q <= mem[rd_addr];
                end
            end else if (SPLIT != 0) begin : g_split
                // CHUNK is 1: d, m and q are one lane
                (* ram_style = "distributed" *) reg [EW-2:0] mem [0:DEPTH-1];
                /* verilator lint_off WIDTHEXPAND */
                wire [5:0] wa = wr_addr;  // zero-extended: DEPTH <= 64
                wire [5:0] ra = rd_addr;
                /* verilator lint_on WIDTHEXPAND */
                wire top;
                /* verilator lint_off UNUSEDSIGNAL */
                wire top_at_wa;  // the write port's own read, unused
                /* verilator lint_on UNUSEDSIGNAL */
                RAM64X1D u_top (
                    .DPO(top), .SPO(top_at_wa), .D(d[EW-1]), .WCLK(clk), .WE(wr_en & m[0]),
                    .A0(wa[0]), .A1(wa[1]), .A2(wa[2]), .A3(wa[3]), .A4(wa[4]), .A5(wa[5]),
                    .DPRA0(ra[0]), .DPRA1(ra[1]), .DPRA2(ra[2]), .DPRA3(ra[3]), .DPRA4(ra[4]),
                    .DPRA5(ra[5]));
                always @(posedge clk) begin
                    if (wr_en && m[0]) mem[wr_addr] <= d[EW-2:0];
                    if (rd_en) q <= {top, mem[rd_addr]};
                end
            end else if (LUTRAM != 0) begin : g_lut
                (* ram_style = "distributed" *) reg [NLC*EW-1:0] mem [0:DEPTH-1];
                always @(posedge clk) begin
                    if (wr_en) begin
                        for (i = 0; i < NLC; i = i + 1)
                            if (m[i]) mem[wr_addr][i*EW +: EW] <= d[i*EW +: EW];
                    end
                    if (rd_en) q <= mem[rd_addr];
                end
            end else begin : g_auto
                reg [NLC*EW-1:0] mem [0:DEPTH-1];
                if (INIT != 0) begin : g_init
                    initial $readmemh(FILE, mem);
                end
                always @(posedge clk) begin
                    if (wr_en) begin
                        for (i = 0; i < NLC; i = i + 1)
                            if (m[i]) mem[wr_addr][i*EW +: EW] <= d[i*EW +: EW];
                    end
                    if (rd_en) q <= mem[rd_addr];
                end
            end
        end
    endgenerate
endmodule
