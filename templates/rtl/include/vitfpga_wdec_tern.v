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
    // Each trit is a function of the 5 element bits (a LUT apiece).
    wire [4:0] t0 = e % 5'd3;
    wire [4:0] t1 = (e / 5'd3) % 5'd3;
    wire [4:0] t2 = e / 5'd9;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [4:0] t = (ph == 2'd0) ? t0 : (ph == 2'd1) ? t1 : t2;
    /* verilator lint_on UNUSEDSIGNAL */
    assign w = t[1:0] - 2'd1;
endmodule
