`timescale 1ns/1ps
// Codebook decoder (docs/engine.md, codec 2): the weight is entry `idx` of the running layer's
// table (2^KB int8 entries, entry k at bits [8k +: 8], latched at start). Table values lie in
// the layer's weight range, so the low WX bits are the weight.
module vitfpga_wdec_cb #(
    parameter integer KB = 2,  // CB_BITS
    parameter integer WX = 4
) (
    input  wire [KB-1:0]       idx,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [(8<<KB)-1:0]  table_q,
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [WX-1:0]       w
);
    wire [7:0] t = table_q[idx*8 +: 8];
    generate
        if (WX < 8) begin : g_narrow
            /* verilator lint_off UNUSEDSIGNAL */
            wire [7:0] t_all = t;
            /* verilator lint_on UNUSEDSIGNAL */
            assign w = t_all[WX-1:0];
        end else begin : g_full
            assign w = t;
        end
    endgenerate
endmodule
