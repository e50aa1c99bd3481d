`timescale 1ns/1ps
// Simulation models of the UltraScale+ primitives the engine instantiates where inference would
// not build them (vitfpga_addtree.v vitfpga_add3, vitfpga_lane_ram.v STYLE 3), written from
// their documented function (UG974: LUT6_2, CARRY8, RAM64X1D). Simulators read this file beside
// the emitted Verilog; synthesis never does: Yosys and Vivado have the primitives themselves.
/* verilator lint_off DECLFILENAME */
/* verilator lint_off UNUSEDPARAM */

// A 6-input LUT with two outputs: O6 = INIT[I5..I0]; O5 = INIT[I4..I0] (the lower half).
module LUT6_2 #(
    parameter [63:0] INIT = 64'h0
) (
    output wire O6,
    output wire O5,
    input  wire I0,
    input  wire I1,
    input  wire I2,
    input  wire I3,
    input  wire I4,
    input  wire I5
);
    assign O6 = INIT[{I5, I4, I3, I2, I1, I0}];
    assign O5 = INIT[{1'b0, I4, I3, I2, I1, I0}];
endmodule

// Eight bits of carry chain as one: a bit propagates the carry where S is 1, else takes DI.
// Only the SINGLE_CY8 type (CI_TOP unused).
module CARRY8 #(
    parameter CARRY_TYPE = "SINGLE_CY8"
) (
    output wire [7:0] CO,
    output wire [7:0] O,
    input  wire       CI,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire       CI_TOP,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [7:0] DI,
    input  wire [7:0] S
);
    wire [8:0] c;
    assign c[0] = CI;
    genvar i;
    generate
        for (i = 0; i < 8; i = i + 1) begin : g_bit
            assign c[i+1] = S[i] ? c[i] : DI[i];
        end
    endgenerate
    assign CO = c[8:1];
    assign O = S ^ c[7:0];
endmodule

// 64 x 1 dual-port LUT RAM: written at A on WCLK's rising edge where WE is 1, read
// asynchronously at A (SPO) and at DPRA (DPO). Powers up as INIT.
module RAM64X1D #(
    parameter [63:0] INIT = 64'h0
) (
    output wire DPO,
    output wire SPO,
    input  wire D,
    input  wire WCLK,
    input  wire WE,
    input  wire A0,
    input  wire A1,
    input  wire A2,
    input  wire A3,
    input  wire A4,
    input  wire A5,
    input  wire DPRA0,
    input  wire DPRA1,
    input  wire DPRA2,
    input  wire DPRA3,
    input  wire DPRA4,
    input  wire DPRA5
);
    reg [63:0] mem;
    initial mem = INIT;
    wire [5:0] a = {A5, A4, A3, A2, A1, A0};
    wire [5:0] dpra = {DPRA5, DPRA4, DPRA3, DPRA2, DPRA1, DPRA0};
    assign SPO = mem[a];
    assign DPO = mem[dpra];
    always @(posedge WCLK) if (WE) mem[a] <= D;
endmodule
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on DECLFILENAME */
