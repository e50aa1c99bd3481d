`timescale 1ns/1ps
// Synchronous FIFO, WIDTH bits x DEPTH entries, one clock: the write pointer / read pointer /
// count bookkeeping the vector units (vitfpga_layernorm_vec, vitfpga_softmax_vec) share.
//
// Timing. A push at an edge writes wdata behind the last entry; a pop at an edge drops the
// head; both may happen at one edge (count unchanged). `head` is the oldest entry, read without
// a clock (first word falls through): it is valid while count != 0 and changes only at an edge
// that pops, or that pushes into an empty FIFO. count is the entries held after the last edge.
// A caller that registers `head` (x <= head) gets a synchronous read, which synthesis folds
// into a block RAM's output register; a caller that uses `head` as it is gets LUT RAM.
//
// Contract: never push into a full FIFO (count == DEPTH) unless popping at the same edge, never
// pop an empty one. Any DEPTH >= 1: a power of two wraps the pointers for free, other depths
// compare with DEPTH - 1. rst_n (active low) and clr empty the FIFO at the edge; the stored
// words are not cleared (they are not read before being written again).
module vitfpga_fifo #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 16
) (
    input  wire                         clk,
    input  wire                         rst_n,  // synchronous, active low
    input  wire                         clr,    // synchronous: empty (a new run)
    input  wire                         push,
    input  wire [WIDTH-1:0]             wdata,
    input  wire                         pop,
    output wire [WIDTH-1:0]             head,
    output reg  [$clog2(DEPTH + 1)-1:0] count
);
    localparam integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam integer CW = $clog2(DEPTH + 1);
    localparam integer POW2 = ((1 << AW) == DEPTH) ? 1 : 0;
    /* verilator lint_off WIDTHTRUNC */
    localparam [AW-1:0] LAST = DEPTH - 1;
    /* verilator lint_on WIDTHTRUNC */

    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [AW-1:0]    wp, rp;
    wire [AW-1:0]   wp_next, rp_next;
    generate
        if (POW2 != 0 || DEPTH == 1) begin : g_wrap
            // DEPTH == 1: the one-bit pointers stay 0 (LAST = 0 wraps them at once).
            assign wp_next = (DEPTH == 1) ? {AW{1'b0}} : wp + 1'b1;
            assign rp_next = (DEPTH == 1) ? {AW{1'b0}} : rp + 1'b1;
        end else begin : g_cmp
            assign wp_next = (wp == LAST) ? {AW{1'b0}} : wp + 1'b1;
            assign rp_next = (rp == LAST) ? {AW{1'b0}} : rp + 1'b1;
        end
    endgenerate

    always @(posedge clk) begin
        if (push) mem[wp] <= wdata;
    end
    always @(posedge clk) begin
        if (!rst_n || clr) begin
            wp <= {AW{1'b0}};
            rp <= {AW{1'b0}};
            count <= {CW{1'b0}};
        end else begin
            if (push) wp <= wp_next;
            if (pop) rp <= rp_next;
            // +1, -1 (all ones) or 0: one adder, no mux between an incrementer and a decrementer.
            count <= count + {{(CW-1){pop && !push}}, push ^ pop};
        end
    end
    assign head = mem[rp];
endmodule
