`timescale 1ns/1ps
// Signed WBITS x 8-bit product built from LUTs and carry chains, never a DSP slice.
//
//   p = w * x, exact: w is WBITS-bit two's complement (1 <= WBITS <= 8; 2..4 in the engine),
//   x is int8, p has WBITS + 8 bits.
//
// Why not `w * x` with a use_dsp = "no" attribute: Vivado honours it, but Yosys 0.70
// synth_xilinx ignores it and maps every multiply whose operands are >= 2 bits and product >= 9
// bits onto a DSP48, so a low-bit MAC array would report one DSP per lane. Without a `*` there is
// nothing for either tool's DSP inference to match. The product is shift-and-add over the
// weight's bits, the top bit weighing -2^(WBITS-1):
//
//   w * x = sum_{i < WBITS-1} w[i] * (x << i)  -  w[WBITS-1] * (x << (WBITS-1))
//
// written as a chain of WBITS-1 two-operand adders (WBITS-1 short carry chains deep; the
// instantiating pipeline registers the product right after). Vivado maps each adder to one LUT
// per bit, the weight-bit mask folding into it, plus the carry chain. Yosys merges the chain into
// one multi-operand $macc and builds a carry-save tree instead: 17 / 28 / 42 LUTs for WBITS =
// 2 / 3 / 4 on its own (xc7). Marking each partial sum (* keep *) forces two-operand adders in
// Yosys too (17 / 26 / 35 on their own) but cost more LUTs inside the engine (1820 against 1639
// for PE=2 x SIMD=8 at 4 bits), so the sum is left to each tool. The module attribute keeps
// Vivado from moving the adders into DSPs.
(* use_dsp = "no" *)
module vitfpga_lutmul #(
    parameter integer WBITS = 4
) (
    input  wire [WBITS-1:0]   w,  // two's complement
    input  wire [7:0]         x,  // two's complement
    output wire [WBITS+7:0]   p   // two's complement, exact
);
    localparam integer PW = WBITS + 8;

    // x sign-extended to the product width. Shifting within PW bits is exact because
    // |w * x| <= 2^(WBITS-1) * 2^7 < 2^(PW-1), and so is every partial sum on the way.
    wire [PW-1:0] xs = {{WBITS{x[7]}}, x};

    // sum[i]: the product of weight bits 0..i with x.
    wire [PW-1:0] sum [0:WBITS-1];

    genvar i;
    generate
        for (i = 0; i < WBITS; i = i + 1) begin : g_bit
            wire [PW-1:0] pp = (xs << i) & {PW{w[i]}};
            wire [PW-1:0] prev;
            if (i == 0) begin : g_first
                assign prev = {PW{1'b0}};
            end else begin : g_next
                assign prev = sum[i - 1];
            end
            if (i == WBITS - 1) begin : g_sign
                assign sum[i] = prev - pp;  // the sign bit weighs -2^(WBITS-1)
            end else begin : g_mag
                assign sum[i] = prev + pp;
            end
        end
    endgenerate

    assign p = sum[WBITS - 1];
endmodule
