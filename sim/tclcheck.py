"""Static checks of the generated Vivado and Vitis HLS TCL, without the vendor tools.

Each script runs under a real `tclsh` with the vendor commands stubbed (`vitfpga.sim.tclsh`:
TCL parses the syntax, unknown commands fail with their name, writes are recorded, not done).
The checks then read the recorded calls: which cells the block design creates, how they are
configured, wired and addressed, and what the script copies where. Nothing of vitfpga's own
emitters is imported to build the expectations except the shared decisions in
`vitfpga.hls.plan.system`, the HLS export's identity and which board files have LEDs.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from vitfpga.hls.emit.hls import HLS_IP_DIR, HLS_IP_VLNV
from vitfpga.hls.emit.vivado import BOARD_LEDS
from vitfpga.hls.plan.engine import ModelPlan
from vitfpga.hls.plan.system import (
    CELL_NAMES,
    DMA_VLNV,
    ENGINE_TOP,
    GPIO_VLNV,
    WHOLE_TOP,
    SystemSpec,
)
from vitfpga.sim.tclsh import (
    NEWEST_IP_VERSION,
    TCL_BUILTINS,
    VITIS_COMMANDS,
    VIVADO_COMMANDS,
    Call,
    TclScriptError,
    _is_number,
    run_tcl,
)
from vitfpga.sim.tools import tclsh_status

__all__ = ["TCL_BUILTINS", "VITIS_COMMANDS", "VIVADO_COMMANDS", "Call", "TclScriptError",
           "check_hls_script", "check_vivado_project", "run_tcl"]

# Pins each IP must have on the PS clock and on a reset of the reset block (PG021 AXI DMA,
# PG059 AXI Interconnect, PG247 SmartConnect, PG164 Processor System Reset); the engine's are
# the Vitis HLS names both engine tops share (docs/engine.md).
_CLOCKS = {"engine": ("ap_clk",), "dma": ("s_axi_lite_aclk", "m_axi_mm2s_aclk", "m_axi_s2mm_aclk"),
           "leds": ("s_axi_aclk",),
           "ctrl_ic": ("ACLK", "S00_ACLK", "M00_ACLK", "M01_ACLK", "M02_ACLK"),
           "reset": ("slowest_sync_clk",)}
_RESETS = {"engine": ("ap_rst_n",), "dma": ("axi_resetn",), "leds": ("s_axi_aresetn",),
           "ctrl_ic": ("ARESETN", "S00_ARESETN", "M00_ARESETN", "M01_ARESETN", "M02_ARESETN")}
# The filter that keeps get_ipdefs to IPs a block design can instantiate (as FINN's scripts do).
_IPI_FILTER = "design_tool_contexts =~ *IPI*"
_MEM_IC_PINS = {"smartconnect": ("aclk", "aresetn"), "axi_interconnect": ("ACLK", "ARESETN")}
_HLS_ORDER = ("csim_design", "csynth_design", "cosim_design", "export_design")
# What each design's module reference needs in the project (docs/engine.md, docs/vit.md).
_ROM_FILES = ("weights.mem", "bias.mem", "mult.mem", "shift.mem", "program.mem")
_RTL_SOURCES = {
    ENGINE_TOP: (f"{ENGINE_TOP}.v", "vitfpga_mvu.v", "vitfpga_requant.v",
                 "vitfpga_lane_ram.v", *_ROM_FILES),
    WHOLE_TOP: (f"{WHOLE_TOP}.v", "vitfpga_vit_core.v", "vitfpga_mvu.v",
                "vitfpga_layernorm_vec.v", "vitfpga_softmax_vec.v", "vitfpga_vmem.v",
                "vitfpga_fifo.v", "vitfpga_requant.v", "vitfpga_rescale_add.v",
                "vitfpga_mulpack.v", "vitfpga_lane_ram.v",
                *_ROM_FILES, "vit_ops.mem",
                "xm_even.mem", "xm_odd.mem", "gelu.mem", "exp2_lut.mem"),
}
_HOST_LOADED = "weights_ram.mem"


# --- Vivado project -------------------------------------------------------------------------


def _obj(name: str) -> str:
    return name.strip().lstrip("/")


def _int(text: str) -> int | None:
    """Vivado address and range forms: 0x40000000, 1073741824, 64K, 1M, 2G."""
    m = re.fullmatch(r"\s*(0[xX][0-9a-fA-F_]+|\d+)\s*([KMG]?)\s*", text)
    if not m:
        return None
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2)]
    return int(m.group(1).replace("_", ""), 0) * scale


class _Built:
    """What a build script made, read from its calls."""

    def __init__(self, calls: list[Call]):
        self.calls = calls
        self.cells: dict[str, Call] = {}
        self.props: dict[str, dict[str, str]] = {}
        self.intf_nets: set[frozenset[str]] = set()
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for c in calls:
            if c.name == "create_bd_cell" and c.positional():
                self.cells[_obj(c.positional()[-1])] = c
            elif c.name == "set_property" and c.args:
                if c.args[0] == "-dict" and len(c.args) >= 3:
                    words = c.words(1)
                    pairs = list(zip(words[0::2], words[1::2], strict=False))
                    targets = c.words(2)
                else:
                    pos = c.positional()
                    pairs = [(pos[0], pos[1])] if len(pos) >= 3 else []
                    targets = c.words(len(c.args) - 1) if len(pos) >= 3 else ()
                for t in targets:
                    self.props.setdefault(_obj(t), {}).update(pairs)
            elif c.name in ("connect_bd_net", "connect_bd_intf_net"):
                # Each positional argument is one object or a list of them.
                pins = [_obj(p) for i in c.positional_indices() for p in c.words(i)]
                if c.name == "connect_bd_intf_net":
                    if len(pins) == 2:
                        self.intf_nets.add(frozenset(pins))
                    continue
                for p in pins[1:]:
                    parent[find(p)] = find(pins[0])
        self._find = find

    def connected(self, a: str, b: str) -> bool:
        return self._find(a) == self._find(b)

    def index(self, name: str, start: int = 0) -> int:
        """Position of the first call `name` at or after `start` (-1: none)."""
        for i in range(start, len(self.calls)):
            if self.calls[i].name == name:
                return i
        return -1

    def named(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    def config(self, cell: str, key: str) -> str | None:
        return self.props.get(cell, {}).get(f"CONFIG.{key}")


def _expect(problems: list[str], ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def _check_cells(b: _Built, spec: SystemSpec, problems: list[str]) -> str:
    """Every cell of CELL_NAMES with the right IP (the DMA and GPIO at exactly the versions
    PYNQ binds its drivers to, the others the newest the catalogue has); returns how the engine
    is made."""
    family = spec.family
    kinds = {"ps": (f"xilinx.com:ip:{family.ip}:",),
             "ctrl_ic": ("xilinx.com:ip:axi_interconnect:",),
             "mem_ic": ("xilinx.com:ip:smartconnect:", "xilinx.com:ip:axi_interconnect:"),
             "reset": ("xilinx.com:ip:proc_sys_reset:",)}
    pinned = {"dma": DMA_VLNV, "leds": GPIO_VLNV}
    for key, name in CELL_NAMES.items():
        call = b.cells.get(name)
        if call is None:
            problems.append(f"no block design cell named {name!r} ({key}); cells: "
                            f"{sorted(b.cells)}")
            continue
        if key == "engine":
            continue
        vlnv = call.option("-vlnv") or ""
        if key in pinned:
            _expect(problems, call.option("-type") == "ip" and vlnv == pinned[key],
                    f"cell {name!r} is {vlnv or call.args!r}, expected exactly {pinned[key]} "
                    f"(PYNQ binds its driver to that VLNV)")
        elif call.option("-type") != "ip" or not vlnv.startswith(kinds[key]):
            problems.append(f"cell {name!r} is {vlnv or call.args!r}, expected an IP "
                            f"{' or '.join(k + '*' for k in kinds[key])}")
        else:
            _expect(problems, vlnv.endswith(f":{NEWEST_IP_VERSION}"),
                    f"cell {name!r} is {vlnv}, not the newest version the catalogue offers "
                    f"({NEWEST_IP_VERSION})")
    _check_ipdefs(b, problems)
    for key, name in (("engine", spec.engine_cell), ("dma", spec.dma_cell),
                      ("leds", spec.gpio_cell)):
        _expect(problems, name == CELL_NAMES[key],
                f"SystemSpec names the {key} {name!r}, the block design {CELL_NAMES[key]!r}")
    engine = b.cells.get(CELL_NAMES["engine"])
    if engine is None:
        return "missing"
    if engine.option("-type") == "module":
        _expect(problems, engine.option("-reference") == spec.top,
                f"the engine cell references module {engine.option('-reference')!r}, "
                f"not {spec.top!r}")
        return "rtl"
    if engine.option("-type") == "ip":
        _expect(problems, engine.option("-vlnv") == HLS_IP_VLNV,
                f"the engine IP is {engine.option('-vlnv')!r}, but run_hls.tcl exports "
                f"{HLS_IP_VLNV}")
        return "hls"
    problems.append(f"the engine cell is neither a module reference nor an IP: {engine.args}")
    return "missing"


def _check_ipdefs(b: _Built, problems: list[str]) -> None:
    """IP lookups see the whole catalogue (-all) and only what a block design can use."""
    for c in b.named("get_ipdefs"):
        _expect(problems, c.has("-all") and _IPI_FILTER in (c.option("-filter") or ""),
                f"get_ipdefs {' '.join(c.args)}: without -all and -filter {{{_IPI_FILTER}}}")


def _check_sources(b: _Built, tcl: Path, engine: str, top: str, problems: list[str]) -> None:
    root = tcl.resolve().parent.parent
    added = [PurePosixPath(w) for c in b.named("add_files") for i in c.positional_indices()
             for w in c.words(i)]
    if engine == "rtl":
        names = {p.name for p in added if p.parent == PurePosixPath(root / "rtl")}
        for need in _RTL_SOURCES.get(top, ()):
            _expect(problems, need in names, f"rtl/{need} is not added to the project")
        _expect(problems, _HOST_LOADED not in names,
                f"rtl/{_HOST_LOADED} is added as a design source, but the host loads it")
    elif engine == "hls":
        repos = [w for c in b.named("set_property") if c.args and c.args[0] == "ip_repo_paths"
                 for w in c.words(1)]
        want = PurePosixPath(root / "hls" / HLS_IP_DIR)
        _expect(problems, any(PurePosixPath(r) == want for r in repos),
                f"ip_repo_paths {repos} does not hold the HLS export {want}")
        _expect(problems, b.index("update_ip_catalog") >= 0,
                "the IP catalogue is not updated after adding the HLS IP repository")


def _check_ps(b: _Built, spec: SystemSpec, plan: ModelPlan, problems: list[str]) -> None:
    family, ps = spec.family, CELL_NAMES["ps"]
    clock = b.config(ps, family.clock_property)
    _expect(problems, clock is not None and _is_number(clock)
            and float(clock) == float(plan.clock_mhz),
            f"PS {family.clock_property} is {clock!r}, the plan's clock is {plan.clock_mhz} MHz")
    for key, value in family.port_properties:
        got = b.config(ps, key)
        _expect(problems, got == value, f"PS {key} is {got!r}, expected {value!r}")


def _check_dma(b: _Built, spec: SystemSpec, plan: ModelPlan, problems: list[str]) -> None:
    dma = CELL_NAMES["dma"]
    want = {"c_include_sg": 0, "c_include_mm2s": 1, "c_include_s2mm": 1,
            "c_sg_length_width": spec.dma_length_bits,
            "c_m_axis_mm2s_tdata_width": plan.simd * 8,
            "c_s_axis_s2mm_tdata_width": plan.pe * 8}
    for key, value in want.items():
        got = b.config(dma, key)
        _expect(problems, got is not None and _int(got) == value,
                f"DMA {key} is {got!r}, expected {value}")
    _expect(problems, (spec.in_bits, spec.out_bits) == (plan.simd * 8, plan.pe * 8),
            f"SystemSpec streams {spec.in_bits}/{spec.out_bits} bits, the plan's SIMD*8/PE*8 "
            f"are {plan.simd * 8}/{plan.pe * 8}")
    for mm, stream in (("c_m_axi_mm2s_data_width", plan.simd * 8),
                       ("c_m_axi_s2mm_data_width", plan.pe * 8)):
        got = _int(b.config(dma, mm) or "")
        _expect(problems, got is not None and got >= stream and got in (32, 64, 128, 256, 512,
                                                                         1024),
                f"DMA {mm} is {b.config(dma, mm)!r}: must be a memory-map width of at least "
                f"the {stream}-bit stream")
    for key in ("c_mm2s_burst_size", "c_s2mm_burst_size"):
        got = _int(b.config(dma, key) or "")
        _expect(problems, got in (2, 4, 8, 16, 32, 64, 128, 256),
                f"DMA {key} is {b.config(dma, key)!r}, not a burst length of 2..256 beats")
    for ic, si, mi in (("ctrl_ic", 1, 3), ("mem_ic", 2, 1)):
        name = CELL_NAMES[ic]
        got = (_int(b.config(name, "NUM_SI") or ""), _int(b.config(name, "NUM_MI") or ""))
        _expect(problems, got == (si, mi),
                f"{name} has NUM_SI/NUM_MI {got}, expected ({si}, {mi})")


def _check_gpio(b: _Built, spec: SystemSpec, board_files: bool, problems: list[str]) -> None:
    """The `leds` GPIO: all outputs, as wide as the spec; on the board's LED interface exactly
    when the board file (which knows their pins) is in use."""
    leds = CELL_NAMES["leds"]
    for key, value in (("C_GPIO_WIDTH", spec.gpio_bits), ("C_ALL_OUTPUTS", 1)):
        got = b.config(leds, key)
        _expect(problems, got is not None and _int(got) == value,
                f"GPIO {key} is {got!r}, expected {value}")
    links = [(c.option("-board_interface"), _obj(c.option("-ip_intf") or ""))
             for c in b.named("apply_board_connection")]
    want = BOARD_LEDS.get(spec.board) if spec.board_part and board_files else None
    _expect(problems, links == ([(want, f"{leds}/GPIO")] if want else []),
            f"board connections {links}, expected "
            f"{[(want, leds + '/GPIO')] if want else 'none (no board file with LEDs)'}")


def _check_wiring(b: _Built, spec: SystemSpec, problems: list[str]) -> None:
    family, c = spec.family, CELL_NAMES
    mem_ic_vlnv = (b.cells[c["mem_ic"]].option("-vlnv") or "") if c["mem_ic"] in b.cells else ""
    mem_ic_pins = _MEM_IC_PINS["axi_interconnect" if "axi_interconnect" in mem_ic_vlnv
                               else "smartconnect"]
    clock = f"{c['ps']}/{family.clock}"
    clocks = [f"{c[k]}/{p}" for k, pins in _CLOCKS.items() for p in pins]
    clocks += [f"{c['mem_ic']}/{mem_ic_pins[0]}", f"{c['ps']}/{family.master_clock}",
               f"{c['ps']}/{family.slave_clock}"]
    for pin in clocks:
        _expect(problems, b.connected(pin, clock), f"{pin} is not on the PS clock {clock}")
    _expect(problems, b.connected(f"{c['reset']}/ext_reset_in", f"{c['ps']}/{family.reset}"),
            f"the reset block's ext_reset_in is not driven by {c['ps']}/{family.reset}")
    sources = (f"{c['reset']}/peripheral_aresetn", f"{c['reset']}/interconnect_aresetn")
    resets = [f"{c[k]}/{p}" for k, pins in _RESETS.items() for p in pins]
    resets.append(f"{c['mem_ic']}/{mem_ic_pins[1]}")
    for pin in resets:
        _expect(problems, any(b.connected(pin, s) for s in sources),
                f"{pin} is not on the reset block's peripheral_aresetn or interconnect_aresetn")
    _expect(problems, not b.connected(*sources), "the two resets are shorted together")
    engine, dma, ctrl, mem, ps = c["engine"], c["dma"], c["ctrl_ic"], c["mem_ic"], c["ps"]
    leds = c["leds"]

    def linked(a: str, b_: str) -> bool:
        return frozenset((a, b_)) in b.intf_nets

    def via(pin: str, ports: tuple[str, ...]) -> str | None:
        return next((p for p in ports if linked(pin, p)), None)

    _expect(problems, linked(f"{ps}/{family.master}", f"{ctrl}/S00_AXI"),
            f"{ps}/{family.master} does not drive {ctrl}/S00_AXI")
    masters = (f"{ctrl}/M00_AXI", f"{ctrl}/M01_AXI", f"{ctrl}/M02_AXI")
    on = [via(pin, masters) for pin in (f"{engine}/s_axi_control", f"{dma}/S_AXI_LITE",
                                         f"{leds}/S_AXI")]
    _expect(problems, None not in on and len(set(on)) == 3,
            f"the engine's s_axi_control, the DMA's S_AXI_LITE and the GPIO's S_AXI are not on "
            f"three masters of {ctrl}")
    slaves = (f"{mem}/S00_AXI", f"{mem}/S01_AXI")
    s_rd, s_wr = via(f"{dma}/M_AXI_MM2S", slaves), via(f"{dma}/M_AXI_S2MM", slaves)
    _expect(problems, s_rd is not None and s_wr is not None and s_rd != s_wr,
            f"the DMA's M_AXI_MM2S and M_AXI_S2MM are not on two slaves of {mem}")
    _expect(problems, linked(f"{mem}/M00_AXI", f"{ps}/{family.slave}"),
            f"{mem}/M00_AXI does not reach {ps}/{family.slave}")
    _expect(problems, linked(f"{dma}/M_AXIS_MM2S", f"{engine}/s_axis"),
            "the DMA's M_AXIS_MM2S does not feed the engine's s_axis")
    _expect(problems, linked(f"{engine}/m_axis", f"{dma}/S_AXIS_S2MM"),
            "the engine's m_axis does not feed the DMA's S_AXIS_S2MM")


def _check_addresses(b: _Built, spec: SystemSpec, problems: list[str]) -> dict[str, int]:
    """Engine, DMA and GPIO register windows and the DMA's DDR mapping; returns the bases
    found."""
    family, c = spec.family, CELL_NAMES
    space = f"{c['ps']}/{family.address_space}"
    found: dict[str, int] = {}
    for key, intf, base, size in (("engine", "s_axi_control", spec.ctrl_base, spec.ctrl_range),
                                  ("dma", "S_AXI_LITE", spec.dma_base, spec.dma_range),
                                  ("leds", "S_AXI", spec.gpio_base, spec.gpio_range)):
        prefix = f"{c[key]}/{intf}/"
        hits = [a for a in b.named("assign_bd_address")
                if any(_obj(s).startswith(prefix) for s in a.positional())]
        if len(hits) != 1:
            problems.append(f"{len(hits)} address assignments of {c[key]}/{intf}, expected 1")
            continue
        a = hits[0]
        offset, rng = _int(a.option("-offset") or ""), _int(a.option("-range") or "")
        target = _obj(a.option("-target_address_space") or "")
        if offset is not None:
            found[key] = offset
        _expect(problems, offset == base,
                f"{c[key]}/{intf} is at {a.option('-offset')!r}, expected {base:#010x}")
        _expect(problems, rng == size,
                f"{c[key]}/{intf} has range {a.option('-range')!r}, expected {size:#x}")
        _expect(problems, target == space,
                f"{c[key]}/{intf} is assigned in {target!r}, expected {space!r}")
    for name in ("Data_MM2S", "Data_S2MM"):
        want_space = f"{c['dma']}/{name}"
        hits = [a for a in b.named("assign_bd_address")
                if _obj(a.option("-target_address_space") or "") == want_space]
        ok = any(_obj(s).startswith(f"{c['ps']}/") and _obj(s).endswith(f"/{family.ddr_segment}")
                 for a in hits for s in a.positional())
        _expect(problems, ok, f"the DMA's {name} is not mapped to the PS DDR segment "
                              f"{family.ddr_segment}")
    return found


def _check_flow(b: _Built, tcl: Path, spec: SystemSpec, problems: list[str]) -> None:
    prj = b.named("create_project")
    if len(prj) != 1:
        problems.append(f"{len(prj)} create_project calls, expected 1")
    else:
        p = prj[0]
        pos = p.positional()
        want_dir = PurePosixPath(tcl.resolve().parent / f"{spec.design}_prj")
        _expect(problems, p.option("-part") == spec.part,
                f"the project is for part {p.option('-part')!r}, the board's is {spec.part!r}")
        _expect(problems, p.has("-force"), "create_project without -force fails on a rerun")
        _expect(problems, len(pos) == 2 and PurePosixPath(pos[1]) == want_dir,
                f"the project directory is {pos[1:]!r}, expected {str(want_dir)!r}")
    designs = [c.positional()[0] for c in b.named("create_bd_design") if c.positional()]
    _expect(problems, designs == [spec.design],
            f"block designs {designs}, expected exactly [{spec.design!r}]")
    order = ["create_project", "create_bd_design", "assign_bd_address", "validate_bd_design",
             "save_bd_design", "make_wrapper", "launch_runs", "wait_on_run", "write_hw_platform"]
    at = 0
    for name in order:
        i = b.index(name, at)
        if i < 0:
            problems.append(f"{name} is missing or out of order (expected: {' -> '.join(order)})")
            break
        at = i + 1
    validate = b.index("validate_bd_design")
    _expect(problems, all(i < validate for i, c in enumerate(b.calls)
                          if c.name in ("assign_bd_address", "connect_bd_net",
                                        "connect_bd_intf_net", "create_bd_cell")),
            "the block design changes after validate_bd_design")
    launches = b.named("launch_runs")
    _expect(problems, any("impl_1" in c.positional() and c.option("-to_step") == "write_bitstream"
                          and c.option("-jobs") is not None for c in launches),
            "no `launch_runs impl_1 -to_step write_bitstream -jobs N`")
    _expect(problems, any(c.name == "get_property" and c.positional()[:1] in (["PROGRESS"],
                                                                             ["STATUS"])
                          for c in b.calls),
            "the script never checks that the implementation run completed")
    tops = [c.positional()[1] for c in b.named("set_property")
            if c.positional()[:1] == ["top"] and len(c.positional()) >= 2]
    _expect(problems, f"{spec.design}_wrapper" in tops,
            f"the top is not set to the block design's wrapper {spec.design}_wrapper")
    copies = [c for c in b.named("file") if c.args[:1] == ("copy",)]
    dests = {PurePosixPath(c.positional()[-1]).suffix: (c.positional()[-2],
                                                        PurePosixPath(c.positional()[-1]))
             for c in copies if len(c.positional()) >= 3}
    out = PurePosixPath(tcl.resolve().parent / "output")
    for suffix in (".bit", ".hwh"):
        if suffix not in dests:
            problems.append(f"no {suffix} is copied out of the project")
            continue
        src, dst = dests[suffix]
        _expect(problems, dst == out / f"{spec.design}{suffix}",
                f"the {suffix} goes to {dst}, expected {out / (spec.design + suffix)}")
        _expect(problems, src.endswith(suffix), f"the {suffix} is copied from {src}")
    if ".hwh" in dests:
        src = dests[".hwh"][0]
        _expect(problems, f"/bd/{spec.design}/hw_handoff/{spec.design}.hwh" in src,
                f"the .hwh comes from {src}, not the block design's hw_handoff")
    _check_xsa(b, out / f"{spec.design}.xsa", problems)


def _check_xsa(b: _Built, want: PurePosixPath, problems: list[str]) -> None:
    """The hardware platform with the bitstream beside the .bit and .hwh, once the run has
    been checked (PYNQ 4's remote Overlay loads it)."""
    writes = b.named("write_hw_platform")
    if len(writes) != 1:
        problems.append(f"{len(writes)} write_hw_platform calls, expected 1 writing {want}")
        return
    w = writes[0]
    got = [PurePosixPath(p) for p in w.positional()] or [PurePosixPath(w.option("-file") or "")]
    _expect(problems, got == [want], f"the .xsa goes to {[str(g) for g in got]}, expected "
                                     f"{want}")
    for flag in ("-fixed", "-include_bit", "-force"):
        _expect(problems, w.has(flag), f"write_hw_platform without {flag}")
    checked = max((i for i, c in enumerate(b.calls) if c.name == "get_property"
                   and c.positional()[:1] == ["STATUS"]), default=-1)
    _expect(problems, b.calls.index(w) > checked >= 0,
            "the .xsa is written before the script checks that the bitstream was written")


def _board_glob(board_part: str) -> str:
    """`*:<board>:<component>:*`: the board's file from any vendor prefix, at any version."""
    fields = board_part.split(":")
    return f"*:{fields[1]}:{fields[2]}:*" if len(fields) == 4 else board_part


def _installed_boards(board_part: str) -> list[str]:
    """What the stubbed Vivado has installed: the board at an older version and at the one
    vitfpga knows (the newest, so the one to pick), and another board."""
    fields = board_part.split(":")
    if len(fields) != 4:
        return [board_part]
    return [":".join([*fields[:3], "0.0"]), board_part, "xilinx.com:other_board:part0:9.9"]


def _check_board(b: _Built, spec: SystemSpec, board_files: bool, problems: list[str]) -> None:
    set_bp = [c.positional()[1] for c in b.named("set_property")
              if c.positional()[:1] == ["board_part"] and len(c.positional()) >= 2]
    if spec.board_part:
        asked = [c.positional() for c in b.named("get_board_parts")]
        want = _board_glob(spec.board_part)
        _expect(problems, [want] in asked, f"get_board_parts asked for {asked}, not the glob "
                                           f"{want!r} (any vendor prefix and version)")
    if spec.board_part and board_files:
        _expect(problems, set_bp == [spec.board_part],
                f"board_part set to {set_bp}, expected [{spec.board_part!r}] when the board "
                f"file is installed")
        return
    _expect(problems, not set_bp, f"board_part {set_bp} is set although the board file is "
                                  f"missing")
    if spec.board_part:
        said = " ".join(" ".join(c.args) for c in b.named("puts"))
        _expect(problems, "xhub::install" in said and "xilinx_board_store" in said,
                "a missing board file is not explained (how to install it from the Xilinx "
                "board store)")


# hw.json keys the driver must have; the optional ones are compared when present.
_HW_REQUIRED = ("design", "engine_cell", "dma_cell", "ctrl_base", "in_bits", "out_bits")


def _check_hw(built: dict[str, object], hw: dict, problems: list[str]) -> None:
    for key, value in built.items():
        if key not in hw:
            if key in _HW_REQUIRED:
                problems.append(f"hw.json has no {key!r} (build.tcl: {value!r})")
            continue
        got = hw[key]
        if isinstance(value, int) and isinstance(got, str):
            got = _int(got)  # an address written as "0x40000000"
        if isinstance(value, float) and isinstance(got, int | float):
            got = float(got)
        _expect(problems, got == value, f"hw.json {key} is {hw[key]!r}, build.tcl has {value!r}")


def _built_values(b: _Built, addresses: dict[str, int], clock_property: str
                  ) -> dict[str, object]:
    """The names and numbers a driver must agree with, as the script built them."""
    dma = CELL_NAMES["dma"]
    values: dict[str, object] = {}
    designs = [c.positional()[0] for c in b.named("create_bd_design") if c.positional()]
    if designs:
        values["design"] = designs[0]
    for key, hw_key in (("engine", "engine_cell"), ("dma", "dma_cell"), ("leds", "gpio_cell")):
        if CELL_NAMES[key] in b.cells:
            values[hw_key] = CELL_NAMES[key]
    for key, hw_key in (("engine", "ctrl_base"), ("dma", "dma_base"), ("leds", "gpio_base")):
        if key in addresses:
            values[hw_key] = addresses[key]
    for key, prop in (("in_bits", "c_m_axis_mm2s_tdata_width"),
                      ("out_bits", "c_s_axis_s2mm_tdata_width")):
        got = _int(b.config(dma, prop) or "")
        if got is not None:
            values[key] = got
    clock = b.config(CELL_NAMES["ps"], clock_property)
    if clock is not None and _is_number(clock):
        values["clock_mhz"] = float(clock)
    return values


def _check_one(calls: list[Call], tcl: Path, spec: SystemSpec, plan: ModelPlan,
               board_files: bool) -> tuple[list[str], dict[str, object]]:
    problems: list[str] = []
    b = _Built(calls)
    engine = _check_cells(b, spec, problems)
    _check_sources(b, tcl, engine, spec.top, problems)
    _check_ps(b, spec, plan, problems)
    _check_dma(b, spec, plan, problems)
    _check_gpio(b, spec, board_files, problems)
    _check_wiring(b, spec, problems)
    addresses = _check_addresses(b, spec, problems)
    _check_flow(b, tcl, spec, problems)
    _check_board(b, spec, board_files, problems)
    return problems, _built_values(b, addresses, spec.family.clock_property)


def _must_fail(tcl: Path, what: str, needle: str, **stubs: bool) -> list[str]:
    """Run a failure branch: it must stop with vitfpga's own message, not a TCL error."""
    try:
        calls = run_tcl(tcl, "vivado", **stubs)
    except TclScriptError as e:
        if not e.message.startswith("vitfpga:"):
            return [f"when {what}, build.tcl fails with a TCL error instead of its own "
                    f"message: {e.message}"]
        problems = [] if needle in e.message else [
            f"when {what}, build.tcl's message does not mention {needle!r}: {e.message}"]
        if what.startswith("the engine") and any(c.name == "create_project" for c in e.calls):
            problems.append(f"when {what}, build.tcl creates the project before failing")
        return problems
    copies = [c for c in calls if c.name == "file" and c.args[:1] == ("copy",)]
    return [f"when {what}, build.tcl does not stop" + (" and copies outputs" if copies else "")]


def check_vivado_project(tcl: Path, spec: SystemSpec, plan: ModelPlan,
                         hw: dict | None = None) -> list[str]:
    """Problems with `vivado/build.tcl` for `spec` and `plan` (empty: none found).

    Runs the script with the board file present (two versions of it installed: the newest
    must be taken) and missing, with a Vivado whose `get_bd_addr_segs -of_objects` finds no
    segment on a pin, plus its three failure branches (missing engine sources, a run that does
    not finish, no axi_dma 7.1 / axi_gpio 2.0 in the catalogue), and checks the recorded
    design: cells and their IPs (pinned and newest versions), PS clock and ports, DMA mode and
    widths, the LED GPIO and its board connection, every clock and reset, the interface
    wiring, the address map, the flow and the output names (.bit, .hwh, .xsa). With `hw` (the
    driver's hw.json), also that the driver's names and numbers are the ones built. Without a
    usable tclsh the one problem says so (never an empty list).
    """
    reason = tclsh_status()
    if reason is not None:
        return [f"cannot check {tcl}: {reason}"]
    tcl = Path(tcl)
    problems: list[str] = []
    text = tcl.read_text()
    _expect(problems, text.startswith("# Generated by vitfpga") and "do not edit" in text,
            "build.tcl lacks its generated-file header")
    boards = _installed_boards(spec.board_part) if spec.board_part else []
    variants: list[tuple[str, bool, bool]] = [
        ("board file installed", True, True), ("board file missing", False, True),
        ("segments found by path only", bool(boards), False)]
    if not spec.board_part:
        variants = variants[1:]
    built = None
    for label, board_files, pin_segments in variants:
        try:
            calls = run_tcl(tcl, "vivado", board_files=board_files, board_parts=boards,
                            pin_segments=pin_segments)
        except TclScriptError as e:
            problems.append(f"{label}: {e.message}")
            continue
        found, values = _check_one(calls, tcl, spec, plan, board_files)
        problems += [f"{label}: {p}" for p in found]
        built = built or values
    problems += _must_fail(tcl, "the engine's sources are missing", "missing",
                           files_exist=False)
    problems += _must_fail(tcl, "the implementation run fails", "runme.log",
                           runs_complete=False)
    problems += _must_fail(tcl, "the catalogue lacks the pinned IP versions", DMA_VLNV,
                           pinned_ips=False)
    if hw is not None and built is not None:
        _check_hw(built, hw, problems)
    return list(dict.fromkeys(problems))


# --- Vitis HLS --------------------------------------------------------------------------------


def check_hls_script(tcl: Path) -> list[str]:
    """Problems with `hls/run_hls.tcl` (empty: none found): it must parse, use only Vitis HLS
    commands, run csim, csynth, cosim and export once each in that order, and export the IP
    that vivado/build.tcl instantiates, into the project beside the script."""
    reason = tclsh_status()
    if reason is not None:
        return [f"cannot check {tcl}: {reason}"]
    try:
        calls = run_tcl(Path(tcl), "vitis_hls")
    except TclScriptError as e:
        return [e.message]
    problems: list[str] = []
    names = [c.name for c in calls]
    steps = [n for n in names if n in _HLS_ORDER]
    _expect(problems, steps == list(_HLS_ORDER),
            f"flow steps {steps}, expected {list(_HLS_ORDER)} once each, in that order")
    exports = [c for c in calls if c.name == "export_design"]
    if exports:
        e = exports[0]
        vlnv = ":".join(e.option(k) or "" for k in ("-vendor", "-library", "-ipname", "-version"))
        _expect(problems, e.option("-format") == "ip_catalog",
                f"export_design -format is {e.option('-format')!r}, not ip_catalog")
        _expect(problems, vlnv == HLS_IP_VLNV,
                f"the exported IP is {vlnv}, build.tcl instantiates {HLS_IP_VLNV}")
    here = PurePosixPath(Path(tcl).resolve().parent)
    project, solution = HLS_IP_DIR.split("/")[:2]
    cds = [PurePosixPath(c.args[0]) for c in calls if c.name == "cd" and c.args]
    opened = [c.positional()[:1] for c in calls if c.name == "open_project"]
    at_project = names.index("open_project") if "open_project" in names else -1
    _expect(problems, bool(cds) and cds[-1] == here and names.index("cd") < at_project,
            "run_hls.tcl does not change to its own folder before open_project, so the IP "
            "export lands wherever vitis_hls was started")
    _expect(problems, opened == [[project]], f"open_project {opened}, expected [[{project!r}]]")
    solutions = [c.positional()[:1] for c in calls if c.name == "open_solution"]
    _expect(problems, solutions == [[solution]],
            f"open_solution {solutions}, expected [[{solution!r}]]")
    parts = [c.positional() for c in calls if c.name == "set_part"]
    _expect(problems, len(parts) == 1, f"set_part called {len(parts)} times, expected once")
    return problems
