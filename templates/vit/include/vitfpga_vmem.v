`timescale 1ns/1ps
// Activation memory of the whole-model top: element-addressed, LANES consecutive elements read
// and written per clock at any element address (docs/vit.md).
//
// Elements sit in words of LANES; words alternate between two banks (even, odd), so the two
// words an unaligned access spans are always in different banks and each bank is a plain simple
// dual-port RAM (one read, one write with per-lane enables, vitfpga_lane_ram.v) that block RAM
// or URAM288 implements directly.
// Read: synchronous, two clocks; lane i of rd_data is element rd_addr + i. Write: lane i of
// wr_data goes to element wr_addr + i where wr_mask[i] is set, one clock after the request: the
// request is registered on entry, so that the writer's select logic and the lane rotation below
// never share a clock (logic depth, docs/vit.md "Timing"). A read in the clock after a write
// to the same word sees the old data; the top waits for its writes to land between ops.
// Every address is a multiple of ALIGN (the program's, `VitProgram.xm_align`/`bm_align`), so
// the rotations move lanes in steps of ALIGN: LANES/ALIGN positions, not LANES (XM of DeiT-Tiny
// at 32 lanes and ALIGN 16: a 2-way multiplexer a bit instead of 32-way; fewer LUTs and levels,
// docs/vit.md "Pieces"). Simulation stops on an unaligned address.
module vitfpga_vmem #(
    parameter integer LANES = 16,   // a power of two, >= 2
    parameter integer ALIGN = 1,    // a power of two, 1..LANES
    parameter integer EW = 16,      // element bits
    parameter integer WORDS = 64,   // words of LANES elements (one spare for unaligned access)
    parameter integer INIT = 0,     // 1: load the banks from EVEN_FILE / ODD_FILE
    parameter integer STYLE = 0,    // both banks' placement (vitfpga_lane_ram.v; 0 with INIT)
    parameter EVEN_FILE = "xm_even.mem",
    parameter ODD_FILE = "xm_odd.mem"
) (
    input  wire                clk,
    input  wire                rd_en,
    input  wire [23:0]         rd_addr,
    output wire [LANES*EW-1:0] rd_data,
    input  wire                wr_en,
    input  wire [23:0]         wr_addr,
    input  wire [LANES*EW-1:0] wr_data,
    input  wire [LANES-1:0]    wr_mask
);
    localparam integer LB = $clog2(LANES);
    localparam integer HW = (WORDS + 1) / 2;  // words per bank
    localparam integer W = LANES * EW;
    localparam integer HB = (HW > 1) ? $clog2(HW) : 1;
    // The offset bits an aligned address can have set: the rotations use only these.
    localparam integer AM = LANES - ALIGN;

    reg             wq_en;
    initial wq_en = 1'b0;  // no write pending at power-up (the FPGA's register init)
    reg [23:0]      wq_addr;
    reg [W-1:0]     wq_data;
    reg [LANES-1:0] wq_mask;
    always @(posedge clk) begin
        wq_en <= wr_en;
        if (wr_en) begin
            wq_addr <= wr_addr;
            wq_data <= wr_data;
            wq_mask <= wr_mask;
        end
    end

    // Word w = addr / LANES and w + 1: the even one is word (w+1)/2 of the even bank, the odd one
    // word w/2 of the odd bank, whichever of the two is w.
    /* verilator lint_off UNUSEDSIGNAL */
    wire [23:0] rw = rd_addr >> LB;
    wire [23:0] ww = wq_addr >> LB;
    wire [23:0] r_even = (rw + 24'd1) >> 1;
    wire [23:0] r_odd = rw >> 1;
    wire [23:0] w_even = (ww + 24'd1) >> 1;
    wire [23:0] w_odd = ww >> 1;
    /* verilator lint_on UNUSEDSIGNAL */

    // Two clocks: the banks' read, then their output registers (the block RAM's own), so that
    // the multiplexer across a deep bank's stacked primitives and the lane rotation below
    // never share a clock (logic depth, docs/vit.md "Timing").
    wire [W-1:0]   b_even, b_odd;
    reg  [W-1:0]   q_even, q_odd;
    reg            a_w_odd, r_w_odd;
    reg [LB-1:0]   a_lo, r_lo;
    always @(posedge clk) begin
        if (rd_en) begin
            a_w_odd <= rw[0];
            a_lo <= rd_addr[LB-1:0];
        end
        q_even <= b_even;
        q_odd <= b_odd;
        r_w_odd <= a_w_odd;
        r_lo <= a_lo;
    end
    // {word w + 1, word w}, shifted down by the element offset within word w.
    wire [2*W-1:0] pair = r_w_odd ? {q_even, q_odd} : {q_odd, q_even};
    wire [2*W-1:0] shifted = pair >> ((r_lo & AM[LB-1:0]) * EW);
    assign rd_data = shifted[W-1:0];

    // Write: the lanes shifted up by the offset; the low word goes to word w, the high to w + 1.
    wire [LB-1:0]    w_lo = wq_addr[LB-1:0] & AM[LB-1:0];
    wire [2*W-1:0]   wd = {{W{1'b0}}, wq_data} << (w_lo * EW);
    wire [2*LANES-1:0] wm = {{LANES{1'b0}}, wq_mask} << w_lo;
    wire [W-1:0]     d_even = ww[0] ? wd[2*W-1:W] : wd[W-1:0];
    wire [W-1:0]     d_odd = ww[0] ? wd[W-1:0] : wd[2*W-1:W];
    wire [LANES-1:0] m_even = ww[0] ? wm[2*LANES-1:LANES] : wm[LANES-1:0];
    wire [LANES-1:0] m_odd = ww[0] ? wm[LANES-1:0] : wm[2*LANES-1:LANES];
    vitfpga_lane_ram #(.LANES(LANES), .EW(EW), .DEPTH(HW), .STYLE(STYLE), .INIT(INIT),
                       .FILE(EVEN_FILE)) u_even (
        .clk(clk), .wr_en(wq_en), .wr_addr(w_even[HB-1:0]), .wr_data(d_even),
        .wr_mask(m_even), .rd_en(rd_en), .rd_addr(r_even[HB-1:0]), .rd_data(b_even));
    vitfpga_lane_ram #(.LANES(LANES), .EW(EW), .DEPTH(HW), .STYLE(STYLE), .INIT(INIT),
                       .FILE(ODD_FILE)) u_odd (
        .clk(clk), .wr_en(wq_en), .wr_addr(w_odd[HB-1:0]), .wr_data(d_odd),
        .wr_mask(m_odd), .rd_en(rd_en), .rd_addr(r_odd[HB-1:0]), .rd_data(b_odd));

`ifndef SYNTHESIS
    always @(posedge clk) begin
        if ((rd_en && rd_addr % ALIGN != 0) || (wr_en && wr_addr % ALIGN != 0)) begin
            $display("vitfpga_vmem: address %0d / %0d not a multiple of ALIGN %0d",
                     rd_en ? rd_addr : 24'd0, wr_en ? wr_addr : 24'd0, ALIGN);
            $finish;
        end
    end
`endif
endmodule
