"""The `.hwh` of the PYNQ system (vitfpga.hls.emit.hwh): the real pynq 4.0 client parses it and
finds the engine, the DMA and the LED GPIO where build.tcl puts them, with the drivers PYNQ binds;
the text is deterministic and escaped; and it states the cells, IP, configuration, wiring and
addresses build.tcl makes (read from build.tcl's recorded calls under a stubbed tclsh)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import digits_like
from vitfpga.errors import BadInput
from vitfpga.hls.emit.hls import HLS_IP_VLNV
from vitfpga.hls.emit.hwh import hwh_text, part_fields, pl_clock
from vitfpga.hls.emit.vivado import emit_vivado
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan
from vitfpga.hls.plan.system import (
    CELL_NAMES,
    DMA_VLNV,
    GPIO_VLNV,
    SystemSpec,
    dma_properties,
    system_spec,
)
from vitfpga.sim.tclcheck import Call, run_tcl

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().parent / "pynq_hwh_probe.py"
BOARDS = ("pynq-z2", "kv260")  # one Zynq-7000, one Zynq UltraScale+


@cache
def _system(board: str, pe: int = 8, simd: int = 4) -> tuple[ModelPlan, SystemSpec]:
    layers, rows = digits_like(blocks=1)
    plan = fixed_plan(layers, rows, get_board(board), pe=pe, simd=simd)
    return plan, system_spec(plan, get_board(board), "digits tiny")


def _pynq_python() -> Path:
    """The real pynq client's interpreter (VITFPGA_PYNQ_PYTHON, default .venv-pynq)."""
    path = Path(os.environ.get("VITFPGA_PYNQ_PYTHON", ROOT / ".venv-pynq" / "bin" / "python"))
    if not path.is_file():
        pytest.skip(f"no PYNQ client interpreter at {path} (`make setup` makes .venv-pynq)")
    return path


def _pynq_view(folder: Path, spec: SystemSpec, from_hls: bool = False) -> dict[str, Any]:
    """What pynq 4.0 makes of the .hwh beside a .bit (see pynq_hwh_probe.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{spec.design}.hwh").write_text(hwh_text(spec, from_hls))
    bit = folder / f"{spec.design}.bit"
    bit.write_bytes(b"\0")  # PYNQ's handler wants the file; only the .hwh is parsed here
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(_pynq_python()), str(PROBE), str(bit)], capture_output=True,
                          text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def pynq_views(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One parse per board for the tests below (each is a second of subprocess)."""
    views: dict[str, dict[str, Any]] = {}
    for board in BOARDS:
        views[board] = _pynq_view(tmp_path_factory.mktemp(board), _system(board)[1])
    return views


@pytest.mark.parametrize("board", BOARDS)
def test_pynq_finds_the_ip_where_the_design_puts_them(pynq_views: dict[str, Any], board: str
                                                      ) -> None:
    _, spec = _system(board)
    view = pynq_views[board]
    assert view["warnings"] == []
    assert view["family_ps"] == spec.family.ip
    ip = view["ip"]
    assert sorted(ip) == sorted([spec.engine_cell, spec.dma_cell, spec.gpio_cell,
                                 view["ps_name"]])
    for cell, base, size, vlnv, driver in (
            (spec.engine_cell, spec.ctrl_base, spec.ctrl_range,
             f"xilinx.com:module_ref:{spec.top}:1.0", "pynq.overlay.DefaultIP"),
            (spec.dma_cell, spec.dma_base, spec.dma_range, DMA_VLNV, "pynq.lib.dma.DMA"),
            (spec.gpio_cell, spec.gpio_base, spec.gpio_range, GPIO_VLNV,
             "pynq.lib.axigpio.AxiGPIO")):
        got = ip[cell]
        assert (got["phys_addr"], got["addr_range"], got["type"], got["driver"]) == \
            (base, size, vlnv, driver), cell
    # pynq's DMA driver reads these, lower case, from description["parameters"]; pynqmetadata
    # keeps the .hwh's spelling, so the .hwh must carry Vivado's lower-case user parameters.
    params = ip[spec.dma_cell]["parameters"]
    for key, value in dma_properties(spec).items():
        assert params[key] == str(value), key
        assert params[key.upper()] == str(value), key.upper()
    assert (params["c_micro_dma"], params["c_include_mm2s_dre"]) == ("0", "0")
    gpio = ip[spec.gpio_cell]["parameters"]
    assert (gpio["C_GPIO_WIDTH"], gpio["C_ALL_OUTPUTS"], gpio["C_IS_DUAL"]) == \
        (str(spec.gpio_bits), "1", "0")
    assert "MM2S_LENGTH" in ip[spec.dma_cell]["registers"]
    assert view["gpio"] == [] and view["interrupts"] == []  # the design connects none


@pytest.mark.parametrize("board", BOARDS)
def test_pynq_sees_the_clock_the_streams_and_ddr(pynq_views: dict[str, Any], board: str
                                                 ) -> None:
    _, spec = _system(board)
    view = pynq_views[board]
    div0, div1, mhz = pl_clock(spec)
    clock = view["clock"]["0"]
    assert (clock["enable"], clock["divisor0"], clock["divisor1"]) == (1, div0, div1)
    assert mhz == pytest.approx(spec.clock_mhz)  # both boards' clocks divide their PLL exactly
    # pynqmetadata reads the achieved rate from the ZynqMP parameter name for every PS, so a
    # Zynq-7000 .hwh (Vivado's too) yields None there.
    assert clock["frequency"] == (None if spec.ps == "zynq7" else pytest.approx(mhz))
    assert [view["clock"][str(i)]["enable"] for i in (1, 2, 3)] == [0, 0, 0]
    links = view["links"]
    assert links[f"{spec.dma_cell}/M_AXIS_MM2S"] == [f"{spec.engine_cell}/s_axis"]
    assert links[f"{spec.engine_cell}/m_axis"] == [f"{spec.dma_cell}/S_AXIS_S2MM"]
    assert links[f"{CELL_NAMES['ps']}/{spec.family.master}"] == \
        [f"{CELL_NAMES['ctrl_ic']}/S00_AXI"]
    for master in ("M_AXI_MM2S", "M_AXI_S2MM"):
        ((segment, base, size),) = view["addrmaps"][f"{spec.dma_cell}/{master}"]
        assert (segment, base) == (spec.family.ddr_segment, 0) and size >= 512 * 2**20
    assert "PSDDR" in view["mem"]


def test_an_hls_engine_is_the_hls_ip_with_its_reg_block() -> None:
    _, spec = _system("pynq-z2")
    modules = _modules(hwh_text(spec, from_hls=True))
    assert modules[spec.engine_cell].get("VLNV") == HLS_IP_VLNV
    ranges = {m.get("INSTANCE"): m.get("ADDRESSBLOCK") for m in _memranges(modules, "ps")}
    assert ranges == {spec.engine_cell: "Reg", spec.dma_cell: "Reg", spec.gpio_cell: "Reg"}
    plain = {m.get("INSTANCE"): m.get("ADDRESSBLOCK")
             for m in _memranges(_modules(hwh_text(spec)), "ps")}
    assert plain[spec.engine_cell] == "reg0"


def test_same_spec_same_bytes_and_the_spec_shows() -> None:
    _, spec = _system("kv260")
    layers, rows = digits_like(blocks=1)
    again = system_spec(fixed_plan(layers, rows, get_board("kv260"), pe=8, simd=4),
                        get_board("kv260"), "digits tiny")
    assert again is not spec
    assert hwh_text(again).encode() == hwh_text(spec).encode()
    wider = hwh_text(_system("kv260", pe=16)[1])
    assert wider != hwh_text(spec)
    dma = _modules(wider)[spec.dma_cell]
    assert _param(dma, "c_s_axis_s2mm_tdata_width") == "128"


def test_names_are_escaped_in_the_xml() -> None:
    _, spec = _system("pynq-z2")
    odd = dataclasses.replace(spec, design='a"b<c>&d\'e', board_part="x&y:\"z\":part0:1.0")
    root = ET.fromstring(hwh_text(odd))
    info = root.find("SYSTEMINFO")
    assert info is not None
    assert (info.get("NAME"), info.get("BOARD")) == (odd.design, odd.board_part)
    dma = _modules(hwh_text(odd))[spec.dma_cell]
    assert _param(dma, "Component_Name") == f"{odd.design}_{spec.dma_cell}_0"
    with pytest.raises(ValueError, match="XML"):
        hwh_text(dataclasses.replace(spec, design="bad\x01name"))


@pytest.mark.parametrize(("part", "fields"), [
    ("xc7z020clg400-1", ("7z020", "clg400", "-1")),
    ("xc7z007sclg225-1", ("7z007s", "clg225", "-1")),
    ("xc7z030sbg485-2", ("7z030", "sbg485", "-2")),
    ("xck26-sfvc784-2LV-c", ("xck26", "sfvc784", "-2LV")),
    ("xczu3eg-sbva484-1-i", ("xczu3eg", "sbva484", "-1")),
    ("xczu7ev-ffvc1156-2-e", ("xczu7ev", "ffvc1156", "-2")),
])
def test_part_numbers_split_as_vivado_writes_them(part: str, fields: tuple[str, str, str]
                                                  ) -> None:
    assert part_fields(part) == fields


def test_a_part_that_is_no_part_number_is_refused() -> None:
    _, spec = _system("pynq-z2")
    with pytest.raises(BadInput, match="part number"):
        hwh_text(dataclasses.replace(spec, part="zynq-ish"))


def test_a_spec_without_the_gpio_is_refused() -> None:
    _, spec = _system("pynq-z2")
    with pytest.raises(BadInput, match="regenerate"):
        hwh_text(dataclasses.replace(spec, gpio_base=0, gpio_range=0))


# --- agreement with build.tcl -----------------------------------------------------------------


def _modules(text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(text)
    return {m.get("INSTANCE", ""): m for m in root.iter("MODULE")}


def _param(module: ET.Element, name: str) -> str | None:
    for p in module.iterfind("PARAMETERS/PARAMETER"):
        if p.get("NAME") == name:
            return p.get("VALUE")
    return None


def _memranges(modules: dict[str, ET.Element], cell: str) -> list[ET.Element]:
    return list(modules[cell].iterfind("MEMORYMAP/MEMRANGE"))


def _hwh_nets(modules: dict[str, ET.Element]) -> set[frozenset[str]]:
    """Interface nets: the bus interfaces that share a BUSNAME."""
    by_net: dict[str, set[str]] = {}
    for name, m in modules.items():
        for bus in m.iterfind("BUSINTERFACES/BUSINTERFACE"):
            if bus.get("BUSNAME", "__NOC__") != "__NOC__":
                by_net.setdefault(bus.get("BUSNAME", ""), set()).add(f"{name}/{bus.get('NAME')}")
    return {frozenset(ends) for ends in by_net.values() if len(ends) > 1}


def _cell_problems(calls: list[Call], modules: dict[str, ET.Element]) -> list[str]:
    """Cells, their IP and every CONFIG value build.tcl sets, against the .hwh's modules."""
    problems: list[str] = []
    cells = {c.positional()[-1].lstrip("/"): c for c in calls
             if c.name == "create_bd_cell" and c.positional()}
    if set(cells) != set(modules):
        problems.append(f"build.tcl makes cells {sorted(cells)}, the .hwh has {sorted(modules)}")
    for name, call in cells.items():
        module = modules.get(name)
        if module is None:
            continue
        vlnv = module.get("VLNV", "")
        if call.option("-type") == "module":
            want = f"xilinx.com:module_ref:{call.option('-reference')}:1.0"
            ok = vlnv == want
        else:
            want = call.option("-vlnv") or ""
            # build.tcl takes the catalogue's newest version except of the IP PYNQ binds by
            # VLNV (DMA, GPIO) and the HLS export: those must match exactly.
            exact = want in (DMA_VLNV, GPIO_VLNV, HLS_IP_VLNV)
            ok = vlnv == want if exact else vlnv.rsplit(":", 1)[0] == want.rsplit(":", 1)[0]
        if not ok:
            problems.append(f"{name}: build.tcl makes {want}, the .hwh says {vlnv}")
    for call in calls:
        if call.name != "set_property" or call.args[:1] != ("-dict",):
            continue
        words = call.words(1)
        for target in call.words(2):
            module = modules.get(target.lstrip("/"))
            if module is None:
                continue
            for key, value in zip(words[0::2], words[1::2], strict=True):
                got = _param(module, key.removeprefix("CONFIG."))
                if got != value:
                    problems.append(f"{target} {key}: build.tcl sets {value}, the .hwh {got}")
    return problems


def _address_problems(calls: list[Call], modules: dict[str, ET.Element]) -> list[str]:
    """The register windows and the DMA's DDR mapping build.tcl assigns, against the .hwh."""
    problems: list[str] = []
    ps = CELL_NAMES["ps"]
    windows = {(m.get("INSTANCE"), m.get("SLAVEBUSINTERFACE")):
               (int(m.get("BASEVALUE", ""), 16), int(m.get("HIGHVALUE", ""), 16))
               for m in _memranges(modules, ps)}
    assigned = set()
    for call in (c for c in calls if c.name == "assign_bd_address"):
        segment = call.positional()[-1].strip("/").split("/")
        offset = call.option("-offset")
        if offset is not None:
            key = (segment[0], segment[1])
            rng = int(call.option("-range") or "0", 16)
            want = (int(offset, 16), int(offset, 16) + rng - 1)
            assigned.add(key)
            if windows.get(key) != want:
                problems.append(f"{key}: build.tcl assigns {want}, the .hwh {windows.get(key)}")
            continue
        # A data master's space ("axi_dma_0/Data_MM2S") mapped onto a PS segment.
        cell, space = (call.option("-target_address_space") or "").split("/")
        master = f"M_AXI_{space.removeprefix('Data_')}"
        got = [(m.get("INSTANCE"), m.get("ADDRESSBLOCK")) for m in _memranges(modules, cell)
               if m.get("MASTERBUSINTERFACE") == master]
        if got != [(segment[0], segment[-1])]:
            problems.append(f"{cell}/{master}: build.tcl maps {segment}, the .hwh {got}")
    if assigned != set(windows):
        problems.append(f"register windows: build.tcl {sorted(assigned)}, .hwh {sorted(windows)}")
    return problems


def _disagreements(calls: list[Call], text: str) -> list[str]:
    modules = _modules(text)
    problems = _cell_problems(calls, modules) + _address_problems(calls, modules)
    built = {frozenset(p.lstrip("/") for p in c.positional()) for c in calls
             if c.name == "connect_bd_intf_net"}
    if built != _hwh_nets(modules):
        problems.append(f"interface nets differ: only build.tcl {built - _hwh_nets(modules)}, "
                        f"only .hwh {_hwh_nets(modules) - built}")
    return problems


@pytest.mark.tclsh
@pytest.mark.parametrize("from_hls", [False, True], ids=["rtl", "hls"])
@pytest.mark.parametrize("board", BOARDS)
def test_the_hwh_states_what_build_tcl_builds(tmp_path: Path, board: str, from_hls: bool
                                              ) -> None:
    plan, spec = _system(board)
    (tcl,) = emit_vivado(spec, plan, tmp_path, from_hls)
    calls = run_tcl(tcl, "vivado")
    text = hwh_text(spec, from_hls)
    assert _disagreements(calls, text) == []
    assert any(c.name == "create_bd_cell" and c.positional()[-1] == spec.gpio_cell
               for c in calls), "build.tcl makes no leds GPIO"
    # The comparison must notice a .hwh that disagrees.
    width = str(dma_properties(spec)["c_sg_length_width"])
    tampered = text.replace(f'NAME="c_sg_length_width" VALUE="{width}"',
                            'NAME="c_sg_length_width" VALUE="23"')
    moved = text.replace(f'BASEVALUE="0x{spec.gpio_base:08X}"',
                         f'BASEVALUE="0x{spec.gpio_base + 0x1000:08X}"')
    assert tampered != text and moved != text
    assert any("c_sg_length_width" in p for p in _disagreements(calls, tampered))
    assert any(spec.gpio_cell in p for p in _disagreements(calls, moved))
