`timescale 1ns/1ps
// Dense intB decoder (docs/engine.md, codec 0): sign-extend v[B-1:0] to WX bits, B the running
// entry's weight bits. Only the widths in WMASK (bit B set for each width a layer of the design
// has) get a path; with one width the decoder is plain wiring. The N:M decoder reuses this on its
// value field.
module vitfpga_wdec_dense #(
    parameter integer EW = 4,      // bits of v
    parameter integer WX = 4,      // output width (the multipliers' weight width)
    parameter integer WMASK = 16   // bit B set: B-bit weights occur
) (
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [EW-1:0] v,
    input  wire [8:0]    wsel,  // one-hot: bit B for the running entry's width B
    /* verilator lint_on UNUSEDSIGNAL */
    output wire [WX-1:0] w
);
    function integer count_widths(input integer mask);
        integer b;
        begin
            count_widths = 0;
            for (b = 1; b < 9; b = b + 1)
                if (((mask >> b) & 1) != 0 && b <= EW) count_widths = count_widths + 1;
        end
    endfunction
    localparam integer NW = count_widths(WMASK);

    genvar j, b;
    generate
        for (j = 0; j < WX; j = j + 1) begin : g_bit
            wire [8:0] t;  // bit j of the weight under each width
            assign t[0] = 1'b0;
            for (b = 1; b < 9; b = b + 1) begin : g_w
                if (((WMASK >> b) & 1) != 0 && b <= EW) begin : g_on
                    // Bit j of a sign-extended B-bit value: v[j] inside, the sign bit above.
                    localparam integer SRC = (j < b) ? j : b - 1;
                    if (NW == 1) begin : g_only
                        assign t[b] = v[SRC];
                    end else begin : g_sel
                        assign t[b] = wsel[b] & v[SRC];
                    end
                end else begin : g_off
                    assign t[b] = 1'b0;
                end
            end
            assign w[j] = |t;
        end
    endgenerate
endmodule
