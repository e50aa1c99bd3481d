`timescale 1ns/1ps
// Ternary decoder (docs/engine.md, codec 3): a 5-bit element t0 + 3*t1 + 9*t2 (t = w + 1) holds
// a lane's int2 weights of three iterations. Phase 0 decodes the element read now; phases 1 and
// 2 use the element kept from phase 0 (`keep`: a valid iteration leaves stage A).
module vitfpga_wdec_tern (
    input  wire       clk,
    input  wire       keep,
    input  wire [4:0] elem,
    input  wire [1:0] ph,  // iteration mod 3 within the row
    output wire [1:0] w    // int2: -1, 0 or 1
);
    reg  [4:0] kept;
    wire [4:0] e = (ph == 2'd0) ? elem : kept;
    always @(posedge clk) begin
        if (keep) kept <= e;
    end
    // The three trits of an element as one table (27 used entries): each output bit is a
    // function of the 5 element bits, one LUT apiece, where `%` and `/` would build dividers.
    function [5:0] trits(input [4:0] v);
        integer t0, t1, t2;
        begin
            t0 = v % 3;
            t1 = (v / 3) % 3;
            t2 = v / 9;
            trits = {t2[1:0], t1[1:0], t0[1:0]};
        end
    endfunction
    reg [5:0] table_t [0:31];
    integer k;
    initial begin
        for (k = 0; k < 32; k = k + 1) table_t[k] = trits(k[4:0]);
    end
    wire [5:0] all = table_t[e];
    wire [1:0] t = (ph == 2'd0) ? all[1:0] : (ph == 2'd1) ? all[3:2] : all[5:4];
    assign w = t - 2'd1;
endmodule
