"""Write `vivado/build.tcl`: the Vivado project, block design, bitstream and `.hwh` of the PYNQ
overlay around the engine (design.md §7).

Every decision comes from `vitfpga.hls.plan.system.SystemSpec` (cells, addresses, stream widths, PS
pins); this module turns it into plain strings and lists, and `templates/vivado/build.tcl.j2`
only lays them out. Every value that reaches the TCL passes `tcl_word` (or `tcl_braced` for the
text inside a `{...}` word), so a name can never become TCL syntax.
"""

from __future__ import annotations

import re
from pathlib import Path

from vitfpga.errors import BadInput
from vitfpga.hls.emit.hls import HLS_IP_DIR, HLS_IP_VLNV
from vitfpga.hls.emit.rtl import CODEBOOK_FILE, MEM_FILES, TOP_FILE
from vitfpga.hls.emit.templating import render, template_root
from vitfpga.hls.emit.vit import VIT_FILES, VIT_TOP_FILE
from vitfpga.hls.plan.engine import ModelPlan
from vitfpga.hls.plan.system import (
    CELL_NAMES,
    DMA_VLNV,
    ENGINE_TOP,
    GPIO_VLNV,
    VIVADO_VERSIONS,
    WHOLE_TOP,
    PsFamily,
    SystemSpec,
    dma_properties,
)

__all__ = ["BOARD_LEDS", "BUILD_TCL", "DEFAULT_JOBS", "board_part_glob", "design_sources",
           "emit_vivado", "tcl_braced", "tcl_word"]

BUILD_TCL = "build.tcl"
_OLDEST = (2022, 2)  # the script warns (and goes on) in older Vivado
# Parallel implementation jobs; a fixed number keeps the file identical on every machine (the
# script reads VITFPGA_VIVADO_JOBS at run time for a different one).
DEFAULT_JOBS = 4

# Board automation of the PS: the rule, and on Zynq-7000 the external DDR and fixed-IO ports
# every Zynq-7000 design needs (made with or without a board preset); no master/slave
# automation, because build.tcl wires every interface itself.
_PS_RULES = {
    "zynq7": ("xilinx.com:bd_rule:processing_system7",
              (("make_external", "FIXED_IO, DDR"), ("Master", "Disable"), ("Slave", "Disable"))),
    "zynqmp": ("xilinx.com:bd_rule:zynq_ultra_ps_e", ()),
}
# Pins of the Xilinx IPs the script wires (PG021 AXI DMA, PG059 AXI Interconnect, PG247
# SmartConnect, PG164 Processor System Reset).
_DMA_CLOCKS = ("s_axi_lite_aclk", "m_axi_mm2s_aclk", "m_axi_s2mm_aclk")
_CTRL_IC_CLOCKS = ("ACLK", "S00_ACLK", "M00_ACLK", "M01_ACLK", "M02_ACLK")
_CTRL_IC_RESETS = ("S00_ARESETN", "M00_ARESETN", "M01_ARESETN", "M02_ARESETN")
# The LED interface of a board's Vivado board file, by board name: the `leds` GPIO drives it
# when the board file is installed (and has it: build.tcl asks). Boards not listed (or with
# LEDs the board file does not describe as a 4-bit GPIO) leave gpio_io_o unconnected; the
# register still reads back what the driver writes.
BOARD_LEDS = {"pynq-z1": "leds_4bits", "pynq-z2": "leds_4bits"}
# The register file's segment name, for the explicit path build.tcl falls back to: Vitis HLS
# and Xilinx IPs name it Reg, a module reference's inferred AXI4-Lite slave reg0.
_HLS_SEGMENT, _MODULE_SEGMENT = "Reg", "reg0"

_WORD = re.compile(r"^[A-Za-z0-9_.:/@+*-]+$")
_BRACED_BAD = re.compile(r"[{}\\\n\r]")


def tcl_word(value: object) -> str:
    """`value` as a bare TCL word, or ValueError: only characters that TCL never treats as
    syntax (no spaces, quotes, braces, brackets, `$`, `;`, `#` or backslashes; `*` is a
    glob character for Vivado's get_* commands, not TCL syntax)."""
    text = str(value)
    if not _WORD.match(text) or text.startswith("#"):
        raise ValueError(f"{text!r} is not a plain TCL word")
    return text


def tcl_braced(value: str) -> str:
    """Text for inside a `{...}` word: anything but braces, backslashes and line breaks."""
    if _BRACED_BAD.search(value):
        raise ValueError(f"{value!r} cannot sit inside a braced TCL word")
    return value


def _hex(value: int) -> str:
    return f"0x{value:08X}"


def _mhz(value: float) -> str:
    """100.0 -> "100", 187.5 -> "187.5": the form Vivado's PS frequency properties take."""
    return f"{value:g}"


def design_sources(top: str, codebook: bool = False) -> tuple[list[str], list[str]]:
    """The files of `rtl/` that make the Verilog design `top`: the Verilog (top, then the
    hand-written modules emit_rtl / emit_vit copy) and the `$readmemh` files baked into the
    bitstream, `codebook.mem` with a codebook decoder. The RAM part of the weights
    (weights_ram.mem) is not a design source: the host loads it at start-up."""
    tables = [CODEBOOK_FILE] if codebook else []
    def modules(folder: str) -> list[str]:
        root = template_root() / folder
        return sorted(f.name for f in root.iterdir() if f.suffix == ".v")

    if top == ENGINE_TOP:
        mems = [name for key, name in MEM_FILES.items() if key != "weights_ram"]
        return [TOP_FILE, *modules("rtl/include")], mems + tables
    if top == WHOLE_TOP:
        return ([VIT_TOP_FILE, *modules("rtl/include"), *modules("vit/include")],
                list(VIT_FILES.values()) + tables)
    raise ValueError(f"no sources for top {top!r}")


def _pairs(props: list[tuple[str, object]]) -> list[tuple[str, str]]:
    return [(tcl_word(f"CONFIG.{k}"), tcl_word(v)) for k, v in props]


def _config(items: tuple[tuple[str, str], ...], preset: bool) -> str:
    """An `apply_bd_automation -config` dictionary as one braced TCL word."""
    pairs = [*items[:1], ("apply_board_preset", "1" if preset else "0"), *items[1:]]
    return "{" + tcl_braced(" ".join(f'{k} "{v}"' for k, v in pairs)) + "}"


def _pin(cell: str, name: str) -> str:
    return tcl_word(f"{cell}/{name}")


def board_part_glob(board_part: str) -> str:
    """`*:<board>:<component>:*` of a `vendor:board:component:version` board part: the board
    file whatever its vendor prefix and version (the newest installed one is used)."""
    fields = board_part.split(":")
    if len(fields) != 4:
        raise ValueError(f"board part {board_part!r} is not vendor:board:component:version")
    return tcl_word(f"*:{fields[1]}:{fields[2]}:*")


def _cells(spec: SystemSpec) -> dict[str, str]:
    cells = {key: tcl_word(name) for key, name in CELL_NAMES.items()}
    # SystemSpec carries the engine, DMA and GPIO names too (hw.json reads them there).
    if ((spec.engine_cell, spec.dma_cell, spec.gpio_cell)
            != (cells["engine"], cells["dma"], cells["leds"])):
        raise ValueError("SystemSpec cell names disagree with CELL_NAMES")
    return cells


def _stream_bits(spec: SystemSpec, plan: ModelPlan) -> tuple[int, int]:
    """(in, out) stream bits: SIMD and PE int8 lanes, which the spec must have been made for."""
    in_bits, out_bits = plan.simd * 8, plan.pe * 8
    if (in_bits, out_bits) != (spec.in_bits, spec.out_bits):
        raise BadInput(f"the system spec streams {spec.in_bits}/{spec.out_bits} bits but the plan "
                       f"{in_bits}/{out_bits}: it was made for another plan")
    return in_bits, out_bits


def _project_context(spec: SystemSpec, from_hls: bool, codebook: bool) -> dict[str, object]:
    """The part, the design's sources and every file and run name of the Vivado project."""
    verilog, mems = design_sources(spec.top, codebook)
    prj, wrapper = f"{spec.design}_prj", f"{spec.design}_wrapper"
    board_glob = spec.board_part.split(":")[1] if spec.board_part.count(":") >= 2 else spec.board
    return {
        "design": tcl_word(spec.design), "board": tcl_word(spec.board),
        "part": tcl_word(spec.part),
        "board_part": tcl_word(spec.board_part) if spec.board_part else "",
        "board_part_glob": board_part_glob(spec.board_part) if spec.board_part else "",
        "board_glob": tcl_word(f"*{board_glob}*"), "vivado_versions": VIVADO_VERSIONS,
        "jobs": DEFAULT_JOBS, "from_hls": from_hls, "engine_module": tcl_word(spec.top),
        "hls_ip_dir": tcl_word(HLS_IP_DIR), "hls_vlnv": tcl_word(HLS_IP_VLNV),
        "verilog": [tcl_word(f) for f in verilog], "mems": [tcl_word(f) for f in mems],
        # File and run names Vivado derives from the design and project names.
        "prj_name": tcl_word(prj), "bd_file": tcl_word(f"{spec.design}.bd"),
        "wrapper": tcl_word(wrapper), "wrapper_bit": tcl_word(f"{wrapper}.bit"),
        "runs_dir": tcl_word(f"{prj}.runs"),
        "gen_dirs": [tcl_word(f"{prj}.gen"), tcl_word(f"{prj}.srcs")],
        # What PYNQ's Overlay loads: <design>.bit beside <design>.hwh (PYNQ 4's remote
        # Overlay also takes the <design>.xsa hardware platform).
        "bit_file": tcl_word(f"{spec.design}.bit"), "hwh_file": tcl_word(f"{spec.design}.hwh"),
        "xsa_file": tcl_word(f"{spec.design}.xsa"),
        "oldest_version": _OLDEST[0] * 10 + _OLDEST[1],
    }


def _ps_context(spec: SystemSpec) -> dict[str, object]:
    """The processing system: its IP, board automation and clock."""
    family = spec.family
    rule, rule_items = _PS_RULES[family.name]
    return {
        "ps_ip": tcl_word(family.ip), "ps_rule": tcl_word(rule),
        "ps_config_board": _config(rule_items, preset=True),
        # Zynq-7000 needs its DDR / FIXED_IO ports even without the board file; Zynq
        # UltraScale+ has no such ports, and without a preset the rule has nothing to do.
        "ps_config_part": _config(rule_items, preset=False) if rule_items else "",
        "ps_props": _pairs([(family.clock_property, _mhz(spec.clock_mhz)),
                            *family.port_properties]),
        "clock_mhz": _mhz(spec.clock_mhz),
    }


def _wiring(family: PsFamily, cells: dict[str, str]) -> dict[str, object]:
    """Clock, reset and interface nets between the cells."""
    ps, engine, dma = cells["ps"], cells["engine"], cells["dma"]
    ctrl_ic, mem_ic, reset, leds = cells["ctrl_ic"], cells["mem_ic"], cells["reset"], cells["leds"]
    clock_pins = [_pin(engine, "ap_clk"), *(_pin(dma, p) for p in _DMA_CLOCKS),
                  _pin(leds, "s_axi_aclk"),
                  *(_pin(ctrl_ic, p) for p in _CTRL_IC_CLOCKS), _pin(mem_ic, "aclk"),
                  _pin(ps, family.master_clock), _pin(ps, family.slave_clock),
                  _pin(reset, "slowest_sync_clk")]
    peripheral_resets = [_pin(engine, "ap_rst_n"), _pin(dma, "axi_resetn"),
                         _pin(leds, "s_axi_aresetn"),
                         *(_pin(ctrl_ic, p) for p in _CTRL_IC_RESETS)]
    interconnect_resets = [_pin(ctrl_ic, "ARESETN"), _pin(mem_ic, "aresetn")]
    intf_nets = [
        # control: PS master -> interconnect -> engine, DMA and GPIO register files
        (_pin(ps, family.master), _pin(ctrl_ic, "S00_AXI")),
        (_pin(ctrl_ic, "M00_AXI"), _pin(engine, "s_axi_control")),
        (_pin(ctrl_ic, "M01_AXI"), _pin(dma, "S_AXI_LITE")),
        (_pin(ctrl_ic, "M02_AXI"), _pin(leds, "S_AXI")),
        # data: DMA <-> DDR through the PS slave port
        (_pin(dma, "M_AXI_MM2S"), _pin(mem_ic, "S00_AXI")),
        (_pin(dma, "M_AXI_S2MM"), _pin(mem_ic, "S01_AXI")),
        (_pin(mem_ic, "M00_AXI"), _pin(ps, family.slave)),
        # streams: DMA -> engine -> DMA
        (_pin(dma, "M_AXIS_MM2S"), _pin(engine, "s_axis")),
        (_pin(engine, "m_axis"), _pin(dma, "S_AXIS_S2MM")),
    ]
    return {
        "ps_clock": _pin(ps, family.clock), "ps_reset": _pin(ps, family.reset),
        "clock_pins": clock_pins,
        "reset_in": _pin(reset, "ext_reset_in"),
        "peripheral_aresetn": _pin(reset, "peripheral_aresetn"),
        "interconnect_aresetn": _pin(reset, "interconnect_aresetn"),
        "peripheral_resets": peripheral_resets, "interconnect_resets": interconnect_resets,
        "intf_nets": intf_nets,
        "ctrl_ic_props": _pairs([("NUM_SI", 1), ("NUM_MI", 3)]),
        "mem_ic_props": _pairs([("NUM_SI", 2), ("NUM_MI", 1)]),
    }


def _address_map(spec: SystemSpec, cells: dict[str, str], from_hls: bool
                 ) -> dict[str, object]:
    """The PS's address space: the engine's, the DMA's and the GPIO's register files, and DDR
    for the DMA's two data spaces. Each segment with its explicit path too, for the Vivado
    releases where `get_bd_addr_segs -of_objects` of the pin finds nothing."""
    family, ps, engine, dma = spec.family, cells["ps"], cells["engine"], cells["dma"]
    leds = cells["leds"]
    engine_seg = _HLS_SEGMENT if from_hls else _MODULE_SEGMENT
    # The PS slave's segments hang under the port's address map (zynqmp: SAXIGP2 for HP0).
    ps_map = {"S_AXI_HP0": "S_AXI_HP0", "S_AXI_HP0_FPD": "SAXIGP2"}[family.slave]
    return {
        "address_space": _pin(ps, family.address_space),
        "ctrl_intf": _pin(engine, "s_axi_control"), "ctrl_base": _hex(spec.ctrl_base),
        "ctrl_range": _hex(spec.ctrl_range),
        "ctrl_seg_path": _pin(engine, f"s_axi_control/{engine_seg}"),
        "dma_intf": _pin(dma, "S_AXI_LITE"), "dma_base": _hex(spec.dma_base),
        "dma_range": _hex(spec.dma_range), "dma_seg_path": _pin(dma, "S_AXI_LITE/Reg"),
        "gpio_intf": _pin(leds, "S_AXI"), "gpio_base": _hex(spec.gpio_base),
        "gpio_range": _hex(spec.gpio_range), "gpio_seg_path": _pin(leds, "S_AXI/Reg"),
        "ddr_seg_path": _pin(ps, f"{ps_map}/{family.ddr_segment}"),
        "ddr_segment": tcl_word(family.ddr_segment),
        "dma_spaces": [_pin(dma, "Data_MM2S"), _pin(dma, "Data_S2MM")],
        "ps_slave": _pin(ps, family.slave),
    }


def _gpio_context(spec: SystemSpec) -> dict[str, object]:
    """The `leds` AXI GPIO: all outputs, and the board's LED interface where it has one."""
    if spec.gpio_range <= 0:
        raise BadInput(f"{spec.design}: the system has no address window for the {spec.gpio_cell} "
                       f"GPIO (system.json from an older vitfpga); regenerate the project")
    return {
        "gpio_props": _pairs([("C_GPIO_WIDTH", spec.gpio_bits), ("C_ALL_OUTPUTS", 1)]),
        "gpio_bits": spec.gpio_bits,
        "board_leds": tcl_word(BOARD_LEDS[spec.board]) if spec.board in BOARD_LEDS else "",
    }


def _context(spec: SystemSpec, plan: ModelPlan, from_hls: bool) -> dict[str, object]:
    """What `build.tcl.j2` lays out, every value already a checked TCL word."""
    cells = _cells(spec)
    in_bits, out_bits = _stream_bits(spec, plan)
    return {
        **_project_context(spec, from_hls, plan.codebook_bits > 0), **_ps_context(spec),
        "dma_props": _pairs(list(dma_properties(spec).items())), "in_bits": in_bits,
        "out_bits": out_bits, "cells": cells, **_wiring(spec.family, cells),
        **_address_map(spec, cells, from_hls), **_gpio_context(spec),
        # PYNQ binds its drivers to these exact versions: build.tcl takes no other.
        "pinned_ips": [(tcl_word(v.split(":")[2]), tcl_word(v)) for v in (DMA_VLNV, GPIO_VLNV)],
    }


def emit_vivado(spec: SystemSpec, plan: ModelPlan, out_dir: Path, from_hls: bool) -> list[Path]:
    """Write `out_dir/vivado/build.tcl` (nothing else) and return it in a one-element list.

    `from_hls` picks the engine: False, the emitted Verilog of `rtl/` as a module reference;
    True, the IP that `hls/run_hls.tcl` exports. Identical inputs give a byte-identical file.
    """
    vivado = Path(out_dir) / "vivado"
    vivado.mkdir(parents=True, exist_ok=True)
    path = vivado / BUILD_TCL
    path.write_text(render("vivado/build.tcl.j2", **_context(spec, plan, from_hls)))
    return [path]
