`timescale 1ns/1ps
// Simple dual-port RAM with per-lane write enables: LANES lanes of EW bits a word, one write
// port (lane i written where mask[i] is set) and one synchronous read port with an enable.
//
// STYLE places the memory where the planner did (hls/plan/whole.py, activation placement):
// 1 asks synthesis for URAM288 (`ram_style = "ultra"`), 2 for LUT RAM ("distributed"), 0 leaves
// the choice to synthesis, which picks block RAM at the depths the planner counts as block RAM.
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
    parameter integer STYLE = 0,      // 0 synthesis's choice, 1 URAM288, 2 LUT RAM
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
    localparam integer CHUNK = (INIT != 0) ? LANES : (STYLE == 2) ? 1 : 8;
    localparam integer NCH = (LANES + CHUNK - 1) / CHUNK;
    integer i;
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
            end else if (STYLE == 2) begin : g_lut
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
