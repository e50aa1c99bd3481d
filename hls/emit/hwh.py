"""The hardware handoff (`<design>.hwh`) of the PYNQ system that `vivado/build.tcl` builds
(design.md §7), written without Vivado.

PYNQ's `Overlay("<design>.bit")` parses the `.hwh` beside the bitstream (pynqmetadata's
`Metadata` + `RuntimeMetadataParser`) to find its IP, their addresses and parameters, and binds
drivers by VLNV. This module writes that file the way Vivado's hw_handoff does, from the same
`SystemSpec` build.tcl renders: every cell of the block design with its VLNV, configuration
(the DMA's CONFIG as both the HDL generics `C_*` and the lower-case user parameters PYNQ's DMA
driver reads), bus interfaces, physical ports and the nets between them, and the PS's address
map. It is minimal (registers by name and offset only, no DDR/MIO external ports, no ZynqMP
C_MAXIGP*/C_SAXIGP* width parameters, which would make PYNQ rewrite the PS's port width
registers on download) but everything it states is what the built design has, so a simulated
board can hand it to the unmodified PYNQ client. The text is deterministic: same spec, same
bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from vitfpga.errors import BadInput
from vitfpga.hls.emit.hls import HLS_IP_VLNV
from vitfpga.hls.emit.vivado import BOARD_LEDS
from vitfpga.hls.plan.system import (
    CELL_NAMES,
    DMA_VLNV,
    GPIO_VLNV,
    VIVADO_VERSIONS,
    SystemSpec,
    dma_properties,
)

__all__ = ["IP_VERSIONS", "PL_PLLS", "engine_vlnv", "hwh_text", "part_fields", "pl_clock"]

# Versions of the catalogue IPs as Vivado 2022.2 (the oldest release build.tcl targets) has
# them; build.tcl takes the newest the install holds, and PYNQ binds none of these by version.
# The DMA and GPIO versions are pinned (system.DMA_VLNV / GPIO_VLNV): PYNQ binds those.
IP_VERSIONS = {"processing_system7": "5.5", "zynq_ultra_ps_e": "3.4",
               "axi_interconnect": "2.1", "smartconnect": "1.0", "proc_sys_reset": "5.0"}
_EDK_VERSION = "1.2"
_VIVADO = VIVADO_VERSIONS.split()[0]
# The PLL the PS derives PL clock 0 from, its name as the PS's CLKSRC/SRCSEL parameter takes it
# and its rate in MHz as the boards' presets set it (Pynq-Z2: 50 MHz x 20; the ZynqMP boards:
# IOPLL at 1500 MHz). Each PL clock divides it by two 6-bit divisors.
PL_PLLS = {"zynq7": ("IO PLL", 1000.0), "zynqmp": ("IOPLL", 1500.0)}
_DIVISOR_MAX = 63
_ARCH = {"zynq7": "zynq", "zynqmp": "zynquplus"}
# DDR as the DMA sees it through the PS slave port (the segment build.tcl assigns): 512 MiB on
# the Zynq-7000 boards PYNQ supports, the fixed 2 GiB low window on Zynq UltraScale+.
_DDR = {"zynq7": (0x0000_0000, 0x2000_0000), "zynqmp": (0x0000_0000, 0x8000_0000)}
# Address and data widths of the PS ports (PG082 for PS7 GP0/HP0, PG201 for HPM0_FPD/HP0_FPD
# as build.tcl leaves them) and their physical port prefixes.
_PS_PORTS = {
    "zynq7": {"master": ("M_AXI_GP0", 32, 32), "slave": ("S_AXI_HP0", 32, 64)},
    "zynqmp": {"master": ("maxigp0", 40, 128), "slave": ("saxigp2", 49, 128)},
}
# Registers (name: offset) of the DMA (PG021, simple mode) and the GPIO (PG144, channel 1) as
# their IP's address block lists them; the block is 4 KiB, the window assigned 64 KiB.
_DMA_REGS = {"MM2S_DMACR": 0x00, "MM2S_DMASR": 0x04, "MM2S_SA": 0x18, "MM2S_SA_MSB": 0x1C,
             "MM2S_LENGTH": 0x28, "S2MM_DMACR": 0x30, "S2MM_DMASR": 0x34, "S2MM_DA": 0x48,
             "S2MM_DA_MSB": 0x4C, "S2MM_LENGTH": 0x58}
_GPIO_REGS = {"GPIO_DATA": 0x0, "GPIO_TRI": 0x4}
_ENGINE_ADDR_BITS = 6  # s_axi_control_AWADDR[5:0] (templates/rtl/top_ports.v.j2)
# PG021 defaults of the DMA settings the design leaves alone but PYNQ's DMA driver reads.
_DMA_DEFAULTS = {"c_micro_dma": 0, "c_include_mm2s_dre": 0, "c_include_s2mm_dre": 0,
                 "c_addr_width": 32, "c_enable_multi_channel": 0}

_ZYNQ7_PART = re.compile(r"xc(7z\d{3}s?)([a-z]{3}\d+)(-\w+)", re.IGNORECASE)
_USP_PART = re.compile(r"(xc[a-z]+\d+[a-z]*)-([a-z]+\d+)-(\d[a-z]*)(?:-[a-z]+)?", re.IGNORECASE)


def part_fields(part: str) -> tuple[str, str, str]:
    """(device, package, speed grade) as Vivado's SYSTEMINFO writes them: xc7z020clg400-1 ->
    ("7z020", "clg400", "-1") (7 series drop the "xc"), xck26-sfvc784-2LV-c -> ("xck26",
    "sfvc784", "-2LV") (UltraScale+ keep it and drop the temperature grade)."""
    if m := _ZYNQ7_PART.fullmatch(part.strip()):
        return m.group(1).lower(), m.group(2).lower(), m.group(3)
    if m := _USP_PART.fullmatch(part.strip()):
        return m.group(1).lower(), m.group(2).lower(), f"-{m.group(3)}"
    raise BadInput(f"part {part!r} is not a Zynq part number like xc7z020clg400-1 or "
                   f"xck26-sfvc784-2LV-c: fix the board's `part`")


def pl_clock(spec: SystemSpec) -> tuple[int, int, float]:
    """(divisor0, divisor1, MHz achieved): PL clock 0 from the family's PLL, the closest rate
    to spec.clock_mhz two 6-bit divisors give (the smallest divisors on a tie)."""
    _, pll = PL_PLLS[spec.ps]
    best = min((abs(pll / (d0 * d1) - spec.clock_mhz), d1, d0)
               for d1 in range(1, _DIVISOR_MAX + 1) for d0 in range(1, _DIVISOR_MAX + 1))
    _, d1, d0 = best
    return d0, d1, pll / (d0 * d1)


def engine_vlnv(spec: SystemSpec, from_hls: bool) -> str:
    """The engine cell's VLNV: the Vitis HLS export, or the module reference of spec.top."""
    return HLS_IP_VLNV if from_hls else f"xilinx.com:module_ref:{spec.top}:1.0"


# --- the block design as data -----------------------------------------------------------------


@dataclass
class _Bus:
    """A bus interface of a cell: its signals (logical name, physical port, width)."""

    name: str
    kind: str  # "aximm", "axis" or "gpio"
    master: bool
    signals: list[tuple[str, str, int]]
    params: dict[str, str] = field(default_factory=dict)
    datawidth: int | None = None
    busname: str = "__NOC__"  # Vivado's name for an unconnected interface
    initiator: bool = False  # Vivado types the DMA's streams INITIATOR/TARGET, not MASTER/SLAVE


@dataclass
class _Port:
    name: str
    out: bool
    width: int = 1
    sigis: str = "undef"
    clock_hz: int | None = None
    net: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)  # (instance, port)


@dataclass
class _Cell:
    name: str
    vlnv: str
    params: dict[str, str]
    buses: list[_Bus] = field(default_factory=list)
    ports: dict[str, _Port] = field(default_factory=dict)
    kind: str = "PERIPHERAL"  # Vivado's IPTYPE/MODCLASS: PERIPHERAL or BUS
    is_ps: bool = False
    blocks: list[tuple[str, str, int, dict[str, int]]] = field(default_factory=list)
    memory_map: list[dict[str, str]] = field(default_factory=list)

    def bus(self, name: str) -> _Bus:
        return next(b for b in self.buses if b.name == name)

    def add_bus(self, bus: _Bus) -> None:
        self.buses.append(bus)
        for logical, physical, width in bus.signals:
            self.ports[physical] = _Port(physical, _drives(logical, bus.master), width)

    def add_ports(self, names: Iterable[str], out: bool, sigis: str = "undef") -> None:
        for name in names:
            self.ports[name] = _Port(name, out, sigis=sigis)


def _drives(logical: str, master: bool) -> bool:
    """Whether the master (or the slave) side drives a signal: AXI masters drive the AW, W and
    AR channels but their READY, and only READY of B and R; stream masters all but TREADY;
    a GPIO interface (the IP is its master) drives its outputs."""
    if logical.startswith("T"):
        from_master = logical != "TREADY"
    elif logical.startswith(("AW", "W", "AR")):
        from_master = not logical.endswith("READY")
    elif logical.startswith(("B", "R")):
        from_master = logical.endswith("READY")
    else:
        from_master = True
    return from_master == master


def _mm(read: bool, write: bool, addr: int, data: int, burst: bool) -> list[tuple[str, int]]:
    """Logical AXI4 (burst) or AXI4-Lite signals and widths of a read and/or write interface."""
    sigs: list[tuple[str, int]] = []
    if write:
        sigs += [("AWADDR", addr), *([("AWLEN", 8), ("AWSIZE", 3), ("AWBURST", 2)] if burst
                                    else []), ("AWPROT", 3), ("AWVALID", 1), ("AWREADY", 1),
                 ("WDATA", data), ("WSTRB", data // 8), *([("WLAST", 1)] if burst else []),
                 ("WVALID", 1), ("WREADY", 1), ("BRESP", 2), ("BVALID", 1), ("BREADY", 1)]
    if read:
        sigs += [("ARADDR", addr), *([("ARLEN", 8), ("ARSIZE", 3), ("ARBURST", 2)] if burst
                                    else []), ("ARPROT", 3), ("ARVALID", 1), ("ARREADY", 1),
                 ("RDATA", data), ("RRESP", 2), *([("RLAST", 1)] if burst else []),
                 ("RVALID", 1), ("RREADY", 1)]
    return sigs


def _axis(bits: int, strb: bool) -> list[tuple[str, int]]:
    return [("TDATA", bits), ("TKEEP", bits // 8), *([("TSTRB", bits // 8)] if strb else []),
            ("TLAST", 1), ("TVALID", 1), ("TREADY", 1)]


def _named(sigs: list[tuple[str, int]], prefix: str, upper: bool) -> list[tuple[str, str, int]]:
    """Physical port names: `<prefix>_<LOGICAL>` in the case the IP uses."""
    return [(lg, f"{prefix}_{lg if upper else lg.lower()}", w) for lg, w in sigs]


def _mm_bus(name: str, master: bool, sigs: list[tuple[str, int]], prefix: str, upper: bool,
            protocol: str, hz: int) -> _Bus:
    widths = dict(sigs)
    data = widths.get("WDATA", widths.get("RDATA", 32))
    addr = widths.get("AWADDR", widths.get("ARADDR", 32))
    params = {"DATA_WIDTH": str(data), "ADDR_WIDTH": str(addr), "PROTOCOL": protocol,
              "FREQ_HZ": str(hz), "READ_WRITE_MODE": _rw_mode(widths)}
    return _Bus(name, "aximm", master, _named(sigs, prefix, upper), params, datawidth=data)


def _rw_mode(widths: dict[str, int]) -> str:
    read, write = "ARADDR" in widths, "AWADDR" in widths
    return "READ_WRITE" if read and write else "READ_ONLY" if read else "WRITE_ONLY"


def _axis_bus(name: str, master: bool, bits: int, prefix: str, upper: bool, strb: bool,
              hz: int) -> _Bus:
    params = {"TDATA_NUM_BYTES": str(bits // 8), "HAS_TKEEP": "1", "HAS_TLAST": "1",
              "HAS_TREADY": "1", "HAS_TSTRB": "1" if strb else "0", "FREQ_HZ": str(hz)}
    return _Bus(name, "axis", master, _named(_axis(bits, strb), prefix, upper), params)


# --- the cells --------------------------------------------------------------------------------


def _clock_hz(spec: SystemSpec) -> int:
    return round(pl_clock(spec)[2] * 1e6)


def _ip_vlnv(name: str) -> str:
    return f"xilinx.com:ip:{name}:{IP_VERSIONS[name]}"


def _common(spec: SystemSpec, cell: str, iptype: str = "PERIPHERAL") -> dict[str, str]:
    # Vivado names each IP instance's generated component <design>_<cell>_0.
    return {"Component_Name": f"{spec.design}_{cell}_0", "EDK_IPTYPE": iptype}


def _window(base: int, size: int) -> dict[str, str]:
    return {"C_BASEADDR": f"0x{base:08X}", "C_HIGHADDR": f"0x{base + size - 1:08X}"}


def _ps_params(spec: SystemSpec) -> dict[str, str]:
    """The PS configuration pynqmetadata reads: PL clock 0 (requested and achieved rate, its
    divisors, source and enable, all four clocks as it walks them) and the two ports."""
    family = spec.family
    src, pll = PL_PLLS[spec.ps]
    d0, d1, mhz = pl_clock(spec)
    divisors = [(d0, d1), (1, 1), (1, 1), (1, 1)]
    params = {family.clock_property: f"{spec.clock_mhz:g}", **dict(family.port_properties)}
    for i, (a, b) in enumerate(divisors):
        if spec.ps == "zynq7":
            params[f"PCW_FPGA_FCLK{i}_ENABLE"] = "1" if i == 0 else "0"
            params[f"PCW_FCLK{i}_PERIPHERAL_CLKSRC"] = src
            params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR0"] = str(a)
            params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR1"] = str(b)
        else:
            params[f"PSU__FPGA_PL{i}_ENABLE"] = "1" if i == 0 else "0"
            params[f"PSU__CRL_APB__PL{i}_REF_CTRL__SRCSEL"] = src
            params[f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR0"] = str(a)
            params[f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR1"] = str(b)
    if spec.ps == "zynq7":
        params |= {"PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ": f"{mhz:.6f}",
                   "PCW_IO_IO_PLL_FREQMHZ": f"{pll:.3f}",
                   "PCW_S_AXI_HP0_DATA_WIDTH": str(_PS_PORTS["zynq7"]["slave"][2])}
    else:
        params["PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ"] = f"{mhz:.6f}"
    return {**params, **_common(spec, CELL_NAMES["ps"])}


def _ps(spec: SystemSpec) -> _Cell:
    family, hz = spec.family, _clock_hz(spec)
    ip = family.ip
    cell = _Cell(CELL_NAMES["ps"], _ip_vlnv(ip), _ps_params(spec), is_ps=True)
    upper = spec.ps == "zynq7"  # PS7 ports are M_AXI_GP0_ARVALID, ZynqMP's maxigp0_arvalid
    for role, master in (("master", True), ("slave", False)):
        prefix, addr, data = _PS_PORTS[spec.ps][role]
        bus = family.master if master else family.slave
        cell.add_bus(_mm_bus(bus, master, _mm(True, True, addr, data, True), prefix, upper,
                             "AXI3" if upper else "AXI4", hz))
    cell.add_ports([family.clock, family.reset], out=True)
    cell.ports[family.clock].sigis, cell.ports[family.clock].clock_hz = "clk", hz
    cell.ports[family.reset].sigis = "rst"
    cell.add_ports([family.master_clock, family.slave_clock], out=False, sigis="clk")
    return cell


def _dma(spec: SystemSpec) -> _Cell:
    props, hz = dma_properties(spec), _clock_hz(spec)
    user = {**_DMA_DEFAULTS, **props}
    params = {k.upper(): str(v) for k, v in user.items()}
    params |= {"C_FAMILY": _ARCH[spec.ps], **_common(spec, spec.dma_cell)}
    params |= {k: str(v) for k, v in user.items()}  # the IP's user parameters, lower case
    params |= _window(spec.dma_base, spec.dma_range)
    cell = _Cell(spec.dma_cell, DMA_VLNV, params)
    cell.add_bus(_mm_bus("S_AXI_LITE", False, _mm(True, True, 10, 32, False), "s_axi_lite",
                         False, "AXI4LITE", hz))
    for channel, read in (("mm2s", True), ("s2mm", False)):
        data = props[f"c_m_axi_{channel}_data_width"]
        cell.add_bus(_mm_bus(f"M_AXI_{channel.upper()}", True,
                             _mm(read, not read, 32, data, True), f"m_axi_{channel}", False,
                             "AXI4", hz))
    cell.add_bus(_axis_bus("M_AXIS_MM2S", True, spec.in_bits, "m_axis_mm2s", False, False, hz))
    cell.add_bus(_axis_bus("S_AXIS_S2MM", False, spec.out_bits, "s_axis_s2mm", False, False,
                           hz))
    cell.add_ports(["s_axi_lite_aclk", "m_axi_mm2s_aclk", "m_axi_s2mm_aclk"], False, "clk")
    cell.add_ports(["axi_resetn"], False, "rst")
    cell.blocks.append(("S_AXI_LITE", "Reg", 4096, _DMA_REGS))
    return cell


def _engine(spec: SystemSpec, from_hls: bool) -> _Cell:
    hz = _clock_hz(spec)
    params = {"C_S_AXI_CONTROL_ADDR_WIDTH": str(_ENGINE_ADDR_BITS),
              "C_S_AXI_CONTROL_DATA_WIDTH": "32", **_common(spec, spec.engine_cell),
              "C_S_AXI_CONTROL_BASEADDR": f"0x{spec.ctrl_base:08X}",
              "C_S_AXI_CONTROL_HIGHADDR": f"0x{spec.ctrl_base + spec.ctrl_range - 1:08X}"}
    cell = _Cell(spec.engine_cell, engine_vlnv(spec, from_hls), params)
    # HLS and the RTL top name the ports alike (s_axi_control_AWADDR, s_axis_TDATA).
    cell.add_bus(_mm_bus("s_axi_control", False,
                         [s for s in _mm(True, True, _ENGINE_ADDR_BITS, 32, False)
                          if s[0] not in ("AWPROT", "ARPROT")],
                         "s_axi_control", True, "AXI4LITE", hz))
    cell.add_bus(_axis_bus("s_axis", False, spec.in_bits, "s_axis", True, True, hz))
    cell.add_bus(_axis_bus("m_axis", True, spec.out_bits, "m_axis", True, True, hz))
    cell.add_ports(["ap_clk"], False, "clk")
    cell.add_ports(["ap_rst_n"], False, "rst")
    cell.add_ports(["interrupt"], True, "INTERRUPT")  # the design connects none
    # The slave's address block: HLS exports name it Reg, a module reference gets reg0.
    cell.blocks.append(("s_axi_control", "Reg" if from_hls else "reg0",
                        1 << _ENGINE_ADDR_BITS, {}))
    return cell


def _gpio(spec: SystemSpec) -> _Cell:
    hz = _clock_hz(spec)
    params = {"C_GPIO_WIDTH": str(spec.gpio_bits), "C_GPIO2_WIDTH": "32", "C_ALL_INPUTS": "0",
              "C_ALL_OUTPUTS": "1", "C_ALL_INPUTS_2": "0", "C_ALL_OUTPUTS_2": "0",
              "C_IS_DUAL": "0", "C_INTERRUPT_PRESENT": "0", "C_DOUT_DEFAULT": "0x00000000",
              "C_TRI_DEFAULT": "0xFFFFFFFF", "C_FAMILY": _ARCH[spec.ps],
              **_common(spec, spec.gpio_cell), **_window(spec.gpio_base, spec.gpio_range)}
    cell = _Cell(spec.gpio_cell, GPIO_VLNV, params)
    cell.add_bus(_mm_bus("S_AXI", False, _mm(True, True, 9, 32, False), "s_axi", False,
                         "AXI4LITE", hz))
    # All outputs: the GPIO interface has its TRI_O only (left unconnected here).
    cell.add_bus(_Bus("GPIO", "gpio", True, [("TRI_O", "gpio_io_o", spec.gpio_bits)],
                      {"BOARD.ASSOCIATED_PARAM": "GPIO_BOARD_INTERFACE"}))
    cell.add_ports(["s_axi_aclk"], False, "clk")
    cell.add_ports(["s_axi_aresetn"], False, "rst")
    cell.blocks.append(("S_AXI", "Reg", 4096, _GPIO_REGS))
    return cell


def _ctrl_ic(spec: SystemSpec, masters: int) -> _Cell:
    """AXI Interconnect: the PS master in, one AXI4-Lite master per register window out."""
    hz, name = _clock_hz(spec), CELL_NAMES["ctrl_ic"]
    _, addr, data = _PS_PORTS[spec.ps]["master"]
    params = {"NUM_SI": "1", "NUM_MI": str(masters), **_common(spec, name, "BUS")}
    cell = _Cell(name, _ip_vlnv("axi_interconnect"), params, kind="BUS")
    cell.add_bus(_mm_bus("S00_AXI", False, _mm(True, True, addr, data, True), "S00_AXI", False,
                         "AXI3" if spec.ps == "zynq7" else "AXI4", hz))
    for m in range(masters):
        cell.add_bus(_mm_bus(f"M{m:02d}_AXI", True, _mm(True, True, 32, 32, False),
                             f"M{m:02d}_AXI", False, "AXI4LITE", hz))
    sides = ["S00", *(f"M{m:02d}" for m in range(masters))]
    cell.add_ports(["ACLK", *(f"{s}_ACLK" for s in sides)], False, "clk")
    cell.add_ports(["ARESETN", *(f"{s}_ARESETN" for s in sides)], False, "rst")
    return cell


def _mem_ic(spec: SystemSpec) -> _Cell:
    """SmartConnect: the DMA's read and write masters in, the PS slave port out."""
    hz, name = _clock_hz(spec), CELL_NAMES["mem_ic"]
    props = dma_properties(spec)
    _, addr, data = _PS_PORTS[spec.ps]["slave"]
    params = {"NUM_SI": "2", "NUM_MI": "1", "NUM_CLKS": "1", **_common(spec, name, "BUS")}
    cell = _Cell(name, _ip_vlnv("smartconnect"), params, kind="BUS")
    for si, read in ((0, True), (1, False)):
        width = props["c_m_axi_mm2s_data_width" if read else "c_m_axi_s2mm_data_width"]
        cell.add_bus(_mm_bus(f"S0{si}_AXI", False, _mm(read, not read, 32, width, True),
                             f"S0{si}_AXI", False, "AXI4", hz))
    cell.add_bus(_mm_bus("M00_AXI", True, _mm(True, True, addr, data, True), "M00_AXI", False,
                         "AXI3" if spec.ps == "zynq7" else "AXI4", hz))
    cell.add_ports(["aclk"], False, "clk")
    cell.add_ports(["aresetn"], False, "rst")
    return cell


def _reset(spec: SystemSpec) -> _Cell:
    name = CELL_NAMES["reset"]
    params = {"C_FAMILY": _ARCH[spec.ps], "C_EXT_RST_WIDTH": "4", "C_AUX_RST_WIDTH": "4",
              "C_EXT_RESET_HIGH": "0", "C_AUX_RESET_HIGH": "0", "C_NUM_BUS_RST": "1",
              "C_NUM_PERP_RST": "1", "C_NUM_INTERCONNECT_ARESETN": "1",
              "C_NUM_PERP_ARESETN": "1", **_common(spec, name)}
    cell = _Cell(name, _ip_vlnv("proc_sys_reset"), params)
    cell.add_ports(["slowest_sync_clk"], False, "clk")
    cell.add_ports(["ext_reset_in", "aux_reset_in", "mb_debug_sys_rst"], False, "rst")
    cell.add_ports(["dcm_locked"], False)
    cell.add_ports(["mb_reset", "bus_struct_reset", "peripheral_reset", "interconnect_aresetn",
                    "peripheral_aresetn"], True, "rst")
    return cell


# --- nets -------------------------------------------------------------------------------------


def _connect(cells: dict[str, _Cell], driver: tuple[str, str], sinks: list[tuple[str, str]]
             ) -> None:
    """One net: the driver lists every sink, each sink its driver (as Vivado's PORTs do)."""
    net = f"{driver[0]}_{driver[1]}"
    source = cells[driver[0]].ports[driver[1]]
    source.net = net
    for cell, port in sinks:
        sink = cells[cell].ports[port]
        if sink.net:
            raise ValueError(f"{cell}/{port} is on two nets")
        sink.net, sink.links = net, [driver]
        source.links.append((cell, port))


def _connect_buses(cells: dict[str, _Cell], a: tuple[str, str], b: tuple[str, str]) -> None:
    """An interface net: each logical signal both sides have, from the side that drives it."""
    bus_a, bus_b = cells[a[0]].bus(a[1]), cells[b[0]].bus(b[1])
    master = a if bus_a.master else b
    bus_a.busname = bus_b.busname = f"{master[0]}_{master[1]}"
    phys_b = {lg: ph for lg, ph, _ in bus_b.signals}
    for logical, phys_a, _ in bus_a.signals:
        if logical not in phys_b:
            continue
        ends = [(a[0], phys_a), (b[0], phys_b[logical])]
        if not cells[a[0]].ports[phys_a].out:
            ends.reverse()
        _connect(cells, ends[0], [ends[1]])


def _wire(spec: SystemSpec, cells: dict[str, _Cell]) -> None:
    """The nets build.tcl makes: the PL clock and resets, then the AXI and stream interfaces."""
    family, c = spec.family, CELL_NAMES
    ps, engine, dma, leds = c["ps"], spec.engine_cell, spec.dma_cell, spec.gpio_cell
    ctrl, mem, rst = c["ctrl_ic"], c["mem_ic"], c["reset"]
    clocked = [(name, p.name) for name, cell in cells.items() for p in cell.ports.values()
               if p.sigis == "clk" and not p.out]
    _connect(cells, (ps, family.clock), clocked)
    _connect(cells, (ps, family.reset), [(rst, "ext_reset_in")])
    resets = [(name, p.name) for name, cell in cells.items() for p in cell.ports.values()
              if p.sigis == "rst" and not p.out and name not in (rst,)]
    interconnect = [(ctrl, "ARESETN"), (mem, "aresetn")]
    _connect(cells, (rst, "interconnect_aresetn"), interconnect)
    _connect(cells, (rst, "peripheral_aresetn"), [r for r in resets if r not in interconnect])
    for a, b in (((ps, family.master), (ctrl, "S00_AXI")),
                 ((ctrl, "M00_AXI"), (engine, "s_axi_control")),
                 ((ctrl, "M01_AXI"), (dma, "S_AXI_LITE")),
                 ((ctrl, "M02_AXI"), (leds, "S_AXI")),
                 ((dma, "M_AXI_MM2S"), (mem, "S00_AXI")),
                 ((dma, "M_AXI_S2MM"), (mem, "S01_AXI")),
                 ((mem, "M00_AXI"), (ps, family.slave)),
                 ((dma, "M_AXIS_MM2S"), (engine, "s_axis")),
                 ((engine, "m_axis"), (dma, "S_AXIS_S2MM"))):
        _connect_buses(cells, a, b)


def _address_map(spec: SystemSpec, cells: dict[str, _Cell], from_hls: bool) -> None:
    """The PS's map of the three register windows, the DMA's of DDR (what assign_bd_address
    sets)."""
    family, ps = spec.family, cells[CELL_NAMES["ps"]]
    engine_block = "Reg" if from_hls else "reg0"
    windows = [(spec.engine_cell, "s_axi_control", engine_block, "C_S_AXI_CONTROL_",
                spec.ctrl_base, spec.ctrl_range),
               (spec.dma_cell, "S_AXI_LITE", "Reg", "C_", spec.dma_base, spec.dma_range),
               (spec.gpio_cell, "S_AXI", "Reg", "C_", spec.gpio_base, spec.gpio_range)]
    for inst, intf, block, stem, base, size in sorted(windows, key=lambda w: w[4]):
        ps.memory_map.append(_memrange(block, stem, base, size, inst, family.master, "REGISTER",
                                       intf))
    ddr_base, ddr_size = _DDR[spec.ps]
    for master in ("M_AXI_MM2S", "M_AXI_S2MM"):
        cells[spec.dma_cell].memory_map.append(
            _memrange(family.ddr_segment, "C_", ddr_base, ddr_size, CELL_NAMES["ps"], master,
                      "MEMORY", family.slave))


def _memrange(block: str, stem: str, base: int, size: int, inst: str, master: str,
              memtype: str, slave: str) -> dict[str, str]:
    return {"ADDRESSBLOCK": block, "BASENAME": f"{stem}BASEADDR", "BASEVALUE": f"0x{base:08X}",
            "HIGHNAME": f"{stem}HIGHADDR", "HIGHVALUE": f"0x{base + size - 1:08X}",
            "INSTANCE": inst, "IS_DATA": "TRUE", "IS_INSTRUCTION": "TRUE",
            "MASTERBUSINTERFACE": master, "MEMTYPE": memtype, "SLAVEBUSINTERFACE": slave}


def _cells(spec: SystemSpec, from_hls: bool) -> dict[str, _Cell]:
    if (spec.engine_cell, spec.dma_cell, spec.gpio_cell) != (
            CELL_NAMES["engine"], CELL_NAMES["dma"], CELL_NAMES["leds"]):
        raise ValueError("SystemSpec cell names disagree with CELL_NAMES")
    if not (spec.gpio_range and spec.ctrl_range and spec.dma_range):
        raise BadInput("the system spec has no AXI GPIO window (written before the `leds` cell "
                       "was added): regenerate the project")
    made = [_ps(spec), _dma(spec), _engine(spec, from_hls), _gpio(spec), _ctrl_ic(spec, 3),
            _mem_ic(spec), _reset(spec)]
    cells = {cell.name: cell for cell in made}
    _wire(spec, cells)
    _address_map(spec, cells, from_hls)
    return cells


# --- XML --------------------------------------------------------------------------------------

_Node = tuple[str, dict[str, str], list["_Node"]]
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#xA;",
            "\r": "&#xD;", "\t": "&#x9;"}
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _attr(value: str) -> str:
    """An attribute value in double quotes; characters XML 1.0 cannot carry are refused."""
    if _NOT_XML.search(value):
        raise ValueError(f"{value!r} has characters an XML attribute cannot hold")
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def _xml(node: _Node, depth: int, out: list[str]) -> None:
    """Vivado's layout: two-space indent, attributes in name order, empty elements closed."""
    tag, attrs, children = node
    pad = "  " * depth
    head = " ".join([tag, *(f"{k}={_attr(v)}" for k, v in sorted(attrs.items()))])
    if not children:
        out.append(f"{pad}<{head}/>")
        return
    out.append(f"{pad}<{head}>")
    for child in children:
        _xml(child, depth + 1, out)
    out.append(f"{pad}</{tag}>")


def _params(params: dict[str, str]) -> list[_Node]:
    return [("PARAMETER", {"NAME": k, "VALUE": v}, []) for k, v in params.items()]


def _range(width: int) -> dict[str, str]:
    return {"LEFT": str(width - 1), "RIGHT": "0"} if width > 1 else {}


def _bus_node(bus: _Bus) -> _Node:
    if bus.kind == "aximm" or not bus.initiator:
        btype = "MASTER" if bus.master else "SLAVE"
    else:
        btype = "INITIATOR" if bus.master else "TARGET"
    attrs = {"BUSNAME": bus.busname, "NAME": bus.name, "TYPE": btype,
             "VLNV": f"xilinx.com:interface:{bus.kind}:1.0"}
    if bus.datawidth is not None:
        attrs["DATAWIDTH"] = str(bus.datawidth)
    maps = [("PORTMAP", {"LOGICAL": lg, "PHYSICAL": ph, **_range(w)}, [])
            for lg, ph, w in bus.signals]
    return ("BUSINTERFACE", attrs, [*_params(bus.params), ("PORTMAPS", {}, maps)])


def _port_node(port: _Port) -> _Node:
    attrs = {"DIR": "O" if port.out else "I", "NAME": port.name, "SIGIS": port.sigis,
             **_range(port.width)}
    if port.net:
        attrs["SIGNAME"] = port.net
    if port.clock_hz is not None:
        attrs["CLKFREQUENCY"] = str(port.clock_hz)
    links = [("CONNECTION", {"INSTANCE": i, "PORT": p}, []) for i, p in port.links]
    return ("PORT", attrs, [("CONNECTIONS", {}, links)] if links else [])


def _block_node(intf: str, name: str, size: int, regs: dict[str, int]) -> _Node:
    registers = [("REGISTER", {"NAME": reg}, [
        ("PROPERTY", {"NAME": "ADDRESS_OFFSET", "VALUE": f"0x{offset:X}"}, []),
        ("PROPERTY", {"NAME": "SIZE", "VALUE": "32"}, []),
        ("PROPERTY", {"NAME": "ACCESS", "VALUE": "read-write"}, []),
        ("PROPERTY", {"NAME": "IS_ENABLED", "VALUE": "true"}, [])])
        for reg, offset in regs.items()]
    attrs = {"ACCESS": "read-write", "INTERFACE": intf, "NAME": name, "RANGE": str(size),
             "USAGE": "register"}
    return ("ADDRESSBLOCK", attrs, [("REGISTERS", {}, registers)] if registers else [])


def _module_node(cell: _Cell) -> _Node:
    modtype, version = cell.vlnv.split(":")[2:]
    attrs = {"FULLNAME": f"/{cell.name}", "HWVERSION": version, "INSTANCE": cell.name,
             "IPTYPE": cell.kind, "IS_ENABLE": "1", "MODTYPE": modtype, "VLNV": cell.vlnv}
    attrs |= {"CONFIGURABLE": "TRUE", "IS_PL": "FALSE"} if cell.is_ps else {
        "MODCLASS": cell.kind}
    children: list[_Node] = [("DOCUMENTS", {}, [])]
    if cell.blocks:
        children.append(("ADDRESSBLOCKS", {}, [_block_node(*b) for b in cell.blocks]))
    children += [("PARAMETERS", {}, _params(cell.params)),
                 ("PORTS", {}, [_port_node(p) for p in cell.ports.values()]),
                 ("BUSINTERFACES", {}, [_bus_node(b) for b in cell.buses])]
    if cell.memory_map:
        children.append(("MEMORYMAP", {}, [("MEMRANGE", m, []) for m in cell.memory_map]))
        targets = dict.fromkeys(m["INSTANCE"] for m in cell.memory_map)
        children.append(("PERIPHERALS", {}, [("PERIPHERAL", {"INSTANCE": t}, [])
                                             for t in targets]))
    return ("MODULE", attrs, children)


def _board_leds(spec: SystemSpec, cells: dict[str, _Cell]) -> tuple[list[_Node], list[_Node]]:
    """The external LED port build.tcl connects the GPIO to with the board file (Pynq-Z1/Z2:
    leds_4bits), as EXTERNALPORTS and EXTERNALINTERFACES; none on other boards."""
    intf = BOARD_LEDS.get(spec.board) if spec.board_part else None
    if intf is None:
        return [], []
    gpio = cells[spec.gpio_cell]
    _, physical, width = gpio.bus("GPIO").signals[0]
    pin, port = f"{intf}_tri_o", gpio.ports[physical]
    port.net, port.links = f"{spec.gpio_cell}_{physical}", [("External_Ports", pin)]
    gpio.bus("GPIO").busname = f"{spec.gpio_cell}_GPIO"
    ext_port = ("PORT", {"DIR": "O", "NAME": pin, "SIGIS": "undef", "SIGNAME": port.net,
                         **_range(width)},
                [("CONNECTIONS", {}, [("CONNECTION", {"INSTANCE": spec.gpio_cell,
                                                      "PORT": physical}, [])])])
    ext_intf = ("BUSINTERFACE", {"BUSNAME": f"{spec.gpio_cell}_GPIO", "NAME": intf,
                                 "TYPE": "MASTER", "VLNV": "xilinx.com:interface:gpio:1.0"},
                [("PORTMAPS", {}, [("PORTMAP", {"LOGICAL": "TRI_O", "PHYSICAL": pin,
                                                **_range(width)}, [])])])
    return [ext_port], [ext_intf]


def hwh_text(spec: SystemSpec, from_hls: bool = False) -> str:
    """The `.hwh` Vivado writes for the block design build.tcl makes from `spec`, around the
    engine as a module reference of spec.top (or, `from_hls`, the Vitis HLS IP), with the
    board file installed (so the `leds` GPIO drives the board's LEDs where build.tcl connects
    them). BadInput for a part that is not a Zynq part number or a spec without the GPIO."""
    device, package, speed = part_fields(spec.part)
    info = {"ARCH": _ARCH[spec.ps], "DEVICE": device, "NAME": spec.design, "PACKAGE": package,
            "SPEEDGRADE": speed}
    if spec.board_part:
        info["BOARD"] = spec.board_part
    cells = _cells(spec, from_hls)
    ext_ports, ext_intfs = _board_leds(spec, cells)
    root: _Node = ("EDKSYSTEM", {"EDWVERSION": _EDK_VERSION, "VIVADOVERSION": _VIVADO}, [
        ("SYSTEMINFO", info, []), ("EXTERNALPORTS", {}, ext_ports),
        ("EXTERNALINTERFACES", {}, ext_intfs),
        ("MODULES", {}, [_module_node(cells[name]) for name in sorted(cells)])])
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="no" ?>',
           "<!-- Generated by vitfpga from the system spec build.tcl is rendered from (not by "
           "Vivado): the design as PYNQ sees it. -->"]
    _xml(root, 0, out)
    return "\n".join(out) + "\n"
