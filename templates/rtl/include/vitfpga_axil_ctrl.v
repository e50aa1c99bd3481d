`timescale 1ns/1ps
// AXI4-Lite control slave with the Vitis HLS `s_axi_control` register map (docs/engine.md):
//   0x00 control: bit0 ap_start (write 1; reads 1 until the engine takes it), bit1 ap_done
//        (clear on read), bit2 ap_idle, bit3 ap_ready (set with ap_done, clear on read)
//   0x04 GIE, 0x08 IER (bit0 done), 0x0c ISR (bit0 done, toggle on write)
//   0x10 rows, 0x18 cycles of the last run (read only), 0x1c bit0 cycles valid, 0x20 layer,
//   0x28 mode (bit0: starts are weight loads)
// The write and read channels follow HLS's one-transaction-at-a-time state machines, which every
// AXI master (Zynq GP port, SmartConnect, PYNQ MMIO) accepts.
module vitfpga_axil_ctrl (
    input  wire        clk,
    input  wire        rst_n,
    input  wire        s_axi_AWVALID,
    output wire        s_axi_AWREADY,
    input  wire [5:0]  s_axi_AWADDR,
    input  wire        s_axi_WVALID,
    output wire        s_axi_WREADY,
    input  wire [31:0] s_axi_WDATA,
    input  wire [3:0]  s_axi_WSTRB,
    input  wire        s_axi_ARVALID,
    output wire        s_axi_ARREADY,
    input  wire [5:0]  s_axi_ARADDR,
    output wire        s_axi_RVALID,
    input  wire        s_axi_RREADY,
    output wire [31:0] s_axi_RDATA,
    output wire [1:0]  s_axi_RRESP,
    output wire        s_axi_BVALID,
    input  wire        s_axi_BREADY,
    output wire [1:0]  s_axi_BRESP,
    output wire        interrupt,
    // engine side
    output wire        start,        // ap_start taken by an idle engine (one cycle)
    output wire [31:0] rows,
    output wire [31:0] layer,
    output wire        load,
    input  wire        engine_idle,
    input  wire        engine_done   // one-cycle pulse at the end of a run
);
    localparam [5:0] A_CTRL = 6'h00, A_GIE = 6'h04, A_IER = 6'h08, A_ISR = 6'h0c,
                     A_ROWS = 6'h10, A_CYCLES = 6'h18, A_CYC_OK = 6'h1c, A_LAYER = 6'h20,
                     A_MODE = 6'h28;
    localparam [1:0] WRIDLE = 2'd0, WRDATA = 2'd1, WRRESP = 2'd2;
    localparam       RDIDLE = 1'b0, RDDATA = 1'b1;

    // ---- write channel -------------------------------------------------------------------------
    reg [1:0] wstate;
    reg [5:0] waddr;
    assign s_axi_AWREADY = (wstate == WRIDLE);
    assign s_axi_WREADY = (wstate == WRDATA);
    assign s_axi_BVALID = (wstate == WRRESP);
    assign s_axi_BRESP = 2'b00;
    wire w_hs = s_axi_WVALID && s_axi_WREADY;
    wire [31:0] wmask = {{8{s_axi_WSTRB[3]}}, {8{s_axi_WSTRB[2]}},
                         {8{s_axi_WSTRB[1]}}, {8{s_axi_WSTRB[0]}}};

    always @(posedge clk) begin
        if (!rst_n) begin
            wstate <= WRIDLE;
        end else begin
            case (wstate)
                WRIDLE: if (s_axi_AWVALID) wstate <= WRDATA;
                WRDATA: if (s_axi_WVALID) wstate <= WRRESP;
                WRRESP: if (s_axi_BREADY) wstate <= WRIDLE;
                default: wstate <= WRIDLE;
            endcase
        end
    end
    always @(posedge clk) begin
        if (s_axi_AWVALID && s_axi_AWREADY) waddr <= s_axi_AWADDR;
    end

    // ---- read channel --------------------------------------------------------------------------
    reg        rstate;
    reg [31:0] rdata;
    assign s_axi_ARREADY = (rstate == RDIDLE);
    assign s_axi_RVALID = (rstate == RDDATA);
    assign s_axi_RDATA = rdata;
    assign s_axi_RRESP = 2'b00;
    wire ar_hs = s_axi_ARVALID && s_axi_ARREADY;

    always @(posedge clk) begin
        if (!rst_n) begin
            rstate <= RDIDLE;
        end else begin
            case (rstate)
                RDIDLE: if (s_axi_ARVALID) rstate <= RDDATA;
                RDDATA: if (s_axi_RREADY) rstate <= RDIDLE;
                default: rstate <= RDIDLE;
            endcase
        end
    end

    // ---- registers -----------------------------------------------------------------------------
    reg        ap_start_r, ap_done_r, ap_ready_r, gie, ier, isr;
    reg [31:0] rows_r, layer_r, cyc, cycles_r;
    reg        mode_r;
    reg        counting, cycles_ok;

    assign start = ap_start_r && engine_idle;
    assign rows = rows_r;
    assign layer = layer_r;
    assign load = mode_r;
    assign interrupt = gie && ier && isr;

    wire wr_ctrl = w_hs && (waddr == A_CTRL);
    wire rd_ctrl = ar_hs && (s_axi_ARADDR == A_CTRL);

    always @(posedge clk) begin
        if (!rst_n) begin
            ap_start_r <= 1'b0;
            ap_done_r <= 1'b0;
            ap_ready_r <= 1'b0;
            gie <= 1'b0;
            ier <= 1'b0;
            isr <= 1'b0;
            rows_r <= 32'd0;
            layer_r <= 32'd0;
            mode_r <= 1'b0;
        end else begin
            if (wr_ctrl && s_axi_WSTRB[0] && s_axi_WDATA[0]) ap_start_r <= 1'b1;
            else if (start) ap_start_r <= 1'b0;

            // A done that coincides with the clearing read wins, so no completion is lost.
            if (engine_done) begin
                ap_done_r <= 1'b1;
                ap_ready_r <= 1'b1;
            end else if (rd_ctrl) begin
                ap_done_r <= 1'b0;
                ap_ready_r <= 1'b0;
            end

            if (w_hs && waddr == A_GIE && s_axi_WSTRB[0]) gie <= s_axi_WDATA[0];
            if (w_hs && waddr == A_IER && s_axi_WSTRB[0]) ier <= s_axi_WDATA[0];
            if (engine_done && ier) isr <= 1'b1;
            else if (w_hs && waddr == A_ISR && s_axi_WSTRB[0]) isr <= isr ^ s_axi_WDATA[0];

            if (w_hs && waddr == A_ROWS) rows_r <= (s_axi_WDATA & wmask) | (rows_r & ~wmask);
            if (w_hs && waddr == A_LAYER) layer_r <= (s_axi_WDATA & wmask) | (layer_r & ~wmask);
            if (w_hs && waddr == A_MODE && s_axi_WSTRB[0]) mode_r <= s_axi_WDATA[0];
        end
    end

    // Cycle counter: `cycles` = clock edges from the cycle the engine takes ap_start to the cycle
    // it signals done.
    always @(posedge clk) begin
        if (!rst_n) begin
            counting <= 1'b0;
            cyc <= 32'd0;
            cycles_r <= 32'd0;
            cycles_ok <= 1'b0;
        end else if (start) begin
            counting <= 1'b1;
            cyc <= 32'd1;
            cycles_ok <= 1'b0;
        end else if (counting) begin
            if (engine_done) begin
                counting <= 1'b0;
                cycles_r <= cyc;
                cycles_ok <= 1'b1;
            end else begin
                cyc <= cyc + 32'd1;
            end
        end
    end

    always @(posedge clk) begin
        if (ar_hs) begin
            case (s_axi_ARADDR)
                A_CTRL:   rdata <= {28'd0, ap_ready_r, engine_idle, ap_done_r, ap_start_r};
                A_GIE:    rdata <= {31'd0, gie};
                A_IER:    rdata <= {31'd0, ier};
                A_ISR:    rdata <= {31'd0, isr};
                A_ROWS:   rdata <= rows_r;
                A_CYCLES: rdata <= cycles_r;
                A_CYC_OK: rdata <= {31'd0, cycles_ok};
                A_LAYER:  rdata <= layer_r;
                A_MODE:   rdata <= {31'd0, mode_r};
                default:  rdata <= 32'd0;
            endcase
        end
    end
endmodule
