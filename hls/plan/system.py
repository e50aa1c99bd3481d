"""The system around the engine on a Zynq board (design.md §7): the processing system, one AXI
DMA for the two data streams, AXI4-Lite control, and the addresses and names a PYNQ driver sees.

Every decision the Vivado block design, its static checks and the PYNQ driver share is made here
once, from the plan and the board: the TCL template and the driver's `hw.json` only render it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import Board
from vitfpga.hls.plan.engine import ModelPlan
from vitfpga.hls.plan.names import identifier

__all__ = [
    "DMA_VLNV",
    "DMA_WIDTHS",
    "ENGINE_REGS",
    "ENGINE_TOP",
    "GPIO_BITS",
    "GPIO_VLNV",
    "PS_FAMILIES",
    "PYNQ_VERSIONS",
    "TOPS",
    "VIVADO_VERSIONS",
    "WHOLE_TOP",
    "PsFamily",
    "SystemSpec",
    "dma_properties",
    "ps_family",
    "system_spec",
]

VIVADO_VERSIONS = "2022.2 or later"  # what build.tcl and the project README say they target

# AXI DMA (PG021) stream widths: the engine's TDATA must be one of them, or the block design
# would need width converters between byte counts that are not multiples of each other.
DMA_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
# The DMA's buffer length register width (c_sg_length_width, 8..26): 26 bits lets one transfer
# move up to 64 MiB - 1, so the driver splits only very large batches.
DMA_LENGTH_BITS = 26
# Register offsets of the engine's AXI4-Lite slave (docs/engine.md).
ENGINE_REGS = {"ctrl": 0x00, "gie": 0x04, "ier": 0x08, "isr": 0x0C, "rows": 0x10,
               "cycles": 0x18, "cycles_valid": 0x1C, "layer": 0x20, "mode": 0x28}
# The two designs behind the same ports and register map: the host-offload engine (docs/engine.md,
# linear layers only) and the whole model (docs/vit.md, image in, logits out).
ENGINE_TOP, WHOLE_TOP = "vitfpga_engine", "vitfpga_vit"
TOPS = (ENGINE_TOP, WHOLE_TOP)
CELL_NAMES = {"ps": "ps", "engine": "vitfpga_engine_0", "dma": "axi_dma_0",
              "ctrl_ic": "ctrl_interconnect", "mem_ic": "mem_interconnect",
              "reset": "rst_ps_pl", "leds": "leds"}
# IP versions the design needs exactly: PYNQ binds its drivers by VLNV (`pynq.lib.dma.DMA` to
# axi_dma 7.1, `AxiGPIO` to axi_gpio 2.0), so build.tcl refuses other versions rather than
# build a design whose DMA PYNQ would not recognise.
DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
GPIO_VLNV = "xilinx.com:ip:axi_gpio:2.0"
# The AXI GPIO `leds` cell: 4 outputs (the board's LEDs where it has them). The driver lights
# them as a sign of life; PYNQ's remote self-test writes and reads it back (its MMIO step).
GPIO_BITS = 4
# PYNQ images the driver supports: 2.7 (setuptools 44), 3.0, and 4.0 (PYNQ.remote).
PYNQ_VERSIONS = ("2.7", "3.0", "3.1", "4.0")


@dataclass(frozen=True)
class PsFamily:
    """The processing system IP of a device family and the pins the block design wires."""

    name: str  # "zynq7" or "zynqmp"
    ip: str  # IP name in the Vivado catalogue (the version is whatever the install holds)
    master: str  # general-purpose master port: the control path
    slave: str  # high-performance slave port: the DMA's path to DDR
    clock: str  # PL clock output
    reset: str  # PL reset output (active low)
    master_clock: str  # clock input pins of the two ports
    slave_clock: str
    address_space: str  # the PS's data address space, for the control slaves
    ddr_segment: str  # the DDR segment the DMA reaches through `slave`
    ctrl_base: int  # where the control slaves go in the master's window
    clock_property: str  # CONFIG property of the PL clock frequency, in MHz
    # CONFIG properties that enable exactly the two ports the design uses.
    port_properties: tuple[tuple[str, str], ...]


PS_FAMILIES = {
    "zynq7": PsFamily(
        name="zynq7", ip="processing_system7", master="M_AXI_GP0", slave="S_AXI_HP0",
        clock="FCLK_CLK0", reset="FCLK_RESET0_N", master_clock="M_AXI_GP0_ACLK",
        slave_clock="S_AXI_HP0_ACLK", address_space="Data", ddr_segment="HP0_DDR_LOWOCM",
        ctrl_base=0x4000_0000, clock_property="PCW_FPGA0_PERIPHERAL_FREQMHZ",
        port_properties=(("PCW_USE_M_AXI_GP0", "1"), ("PCW_USE_S_AXI_HP0", "1"))),
    "zynqmp": PsFamily(
        name="zynqmp", ip="zynq_ultra_ps_e", master="M_AXI_HPM0_FPD", slave="S_AXI_HP0_FPD",
        clock="pl_clk0", reset="pl_resetn0", master_clock="maxihpm0_fpd_aclk",
        slave_clock="saxihp0_fpd_aclk", address_space="Data", ddr_segment="HP0_DDR_LOW",
        ctrl_base=0xA000_0000, clock_property="PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ",
        port_properties=(("PSU__FPGA_PL0_ENABLE", "1"), ("PSU__USE__M_AXI_GP0", "1"),
                         ("PSU__USE__M_AXI_GP1", "0"),
                         ("PSU__USE__M_AXI_GP2", "0"), ("PSU__USE__S_AXI_GP2", "1"))),
}

def ps_family(board: Board) -> PsFamily:
    """The board's processing system (its record's `ps`), or a clear refusal for boards PYNQ
    cannot run on."""
    if board.ps == "none":
        raise BadInput(f"board '{board.name}' ({board.part}) has no processing system; a PYNQ "
                       f"project needs a Zynq-7000 or Zynq UltraScale+ board (see `vitfpga "
                       f"boards`)")
    if board.ps in PS_FAMILIES:
        return PS_FAMILIES[board.ps]
    raise BadInput(f"board '{board.name}': part {board.part!r} is not a Zynq-7000 (xc7z*) or "
                   f"Zynq UltraScale+ (xczu*, xck26, xck24) device, so there is no processing "
                   f"system to build the PYNQ project around (or set ps = \"zynq7\" or "
                   f"\"zynqmp\" in its [boards.{board.name}] table)")


@dataclass(frozen=True)
class SystemSpec:
    """Plain data: what `vivado/build.tcl` builds and what `pynq/.../hw.json` says about it."""

    design: str  # block design, bitstream and .hwh base name; the driver package's name
    top: str  # the Verilog module in the engine cell: ENGINE_TOP or WHOLE_TOP
    board: str
    part: str
    board_part: str  # "" when the board has no Vivado board file we know of
    ps: str  # PS_FAMILIES key
    clock_mhz: float
    engine_cell: str
    dma_cell: str
    ctrl_base: int  # engine's AXI4-Lite slave
    ctrl_range: int
    dma_base: int  # the DMA's AXI4-Lite slave
    dma_range: int
    in_bits: int  # MM2S stream = engine s_axis TDATA = SIMD x 8
    out_bits: int  # S2MM stream = engine m_axis TDATA = PE x 8
    dma_length_bits: int
    max_transfer: int  # bytes one DMA transfer may move
    # the AXI GPIO `leds` (defaults: what projects written before it was added would have had)
    gpio_cell: str = CELL_NAMES["leds"]
    gpio_base: int = 0
    gpio_range: int = 0
    gpio_bits: int = GPIO_BITS

    @property
    def family(self) -> PsFamily:
        return PS_FAMILIES[self.ps]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


# Memory-mapped data width of the PS port the DMA writes through: HP0 is 64 bits on Zynq-7000,
# S_AXI_HP0_FPD 128 bits by default on Zynq UltraScale+. The DMA's own width is at least the
# stream width (its DataMover requires stream <= memory-map width) and never below 32.
_PORT_BITS = {"zynq7": 64, "zynqmp": 128}
# Beats per AXI burst. 16 is what the Zynq-7000 HP ports take natively (AXI3) and keeps a burst
# under the 4 KiB boundary for every width up to 1024 bits.
_BURST = 16


def dma_properties(spec: SystemSpec) -> dict[str, int]:
    """The AXI DMA's CONFIG (PG021 names, lower case as Vivado's .hwh has them): simple mode,
    both channels, the streams at the engine's widths. build.tcl sets exactly these, the
    simulated board's .hwh states them and its DMA model behaves by them."""
    port_bits = _PORT_BITS[spec.ps]
    return {
        "c_include_sg": 0, "c_sg_length_width": spec.dma_length_bits,
        "c_sg_include_stscntrl_strm": 0, "c_include_mm2s": 1, "c_include_s2mm": 1,
        "c_m_axis_mm2s_tdata_width": spec.in_bits, "c_s_axis_s2mm_tdata_width": spec.out_bits,
        "c_m_axi_mm2s_data_width": max(32, port_bits, spec.in_bits),
        "c_m_axi_s2mm_data_width": max(32, port_bits, spec.out_bits),
        "c_mm2s_burst_size": _BURST, "c_s2mm_burst_size": _BURST,
    }


_MODEL_NAME = re.compile(r"[^a-z0-9_]+")


def design_name(model: str) -> str:
    """`vitfpga_<model>`: a Python package name, a Vivado design name and a file name at once."""
    stem = _MODEL_NAME.sub("_", model.lower()).strip("_") or "model"
    return identifier(f"vitfpga_{stem}", max_len=40).lower()


def system_spec(plan: ModelPlan, board: Board, model: str, top: str = ENGINE_TOP
                ) -> SystemSpec:
    """The system for `plan` on `board` around `top`; BadInput when the board or the streams
    cannot be built as a PYNQ design."""
    if top not in TOPS:
        raise ValueError(f"unknown top {top!r}")
    family = ps_family(board)
    if board.name != plan.board:
        raise BadInput(f"the plan is for {plan.board}, not {board.name}")
    for what, lanes, bits in (("input (SIMD)", plan.simd, plan.simd * 8),
                              ("output (PE)", plan.pe, plan.pe * 8)):
        if bits not in DMA_WIDTHS:
            raise BadInput(f"the engine's {what} stream is {lanes} lanes = {bits} bits; AXI DMA "
                           f"streams are 8, 16, ..., 1024 bits, so PE and SIMD must be powers "
                           f"of two up to 128 for a PYNQ project")
    window = 0x1_0000
    return SystemSpec(
        design=design_name(model), top=top, board=board.name, part=board.part,
        board_part=board.board_part, ps=family.name, clock_mhz=plan.clock_mhz,
        engine_cell=CELL_NAMES["engine"], dma_cell=CELL_NAMES["dma"],
        ctrl_base=family.ctrl_base, ctrl_range=window, dma_base=family.ctrl_base + window,
        dma_range=window, in_bits=plan.simd * 8, out_bits=plan.pe * 8,
        dma_length_bits=DMA_LENGTH_BITS, max_transfer=2**DMA_LENGTH_BITS - 1,
        gpio_cell=CELL_NAMES["leds"], gpio_base=family.ctrl_base + 2 * window,
        gpio_range=window, gpio_bits=GPIO_BITS)
