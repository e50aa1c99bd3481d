"""vivado/build.tcl and hls/run_hls.tcl, checked under a real tclsh with stubbed vendor commands
(vitfpga.sim.tclcheck): for every built-in board, from the Verilog and from the HLS IP; tampered
scripts must be caught; boards that cannot host a PYNQ design are refused."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import digits_like, random_layer
from vitfpga.errors import BadInput
from vitfpga.hls.emit.hls import emit_hls
from vitfpga.hls.emit.vivado import emit_vivado, tcl_braced, tcl_word
from vitfpga.hls.plan.boards import BOARDS, Board, get_board
from vitfpga.hls.plan.engine import ModelPlan, fixed_plan, plan_model
from vitfpga.hls.plan.system import SystemSpec, system_spec
from vitfpga.sim.tclcheck import (
    TclScriptError,
    check_hls_script,
    check_vivado_project,
    run_tcl,
)
from vitfpga.sim.tools import tclsh_status

needs_tclsh = pytest.mark.tclsh


@cache
def _system(board: str) -> tuple[ModelPlan, SystemSpec]:
    layers, rows = digits_like(blocks=2)
    plan = plan_model(layers, rows, get_board(board))
    return plan, system_spec(plan, get_board(board), "digits tiny")


def _build(tmp_path: Path, board: str = "pynq-z2", from_hls: bool = False) -> Path:
    plan, spec = _system(board)
    (tcl,) = emit_vivado(spec, plan, tmp_path / "project", from_hls)
    return tcl


@needs_tclsh
@pytest.mark.parametrize("from_hls", [False, True], ids=["rtl", "hls"])
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_every_board_builds_a_checked_project(tmp_path: Path, board: str, from_hls: bool) -> None:
    plan, spec = _system(board)
    written = emit_vivado(spec, plan, tmp_path, from_hls)
    assert written == [tmp_path / "vivado" / "build.tcl"]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == \
        [Path("vivado/build.tcl")]
    assert check_vivado_project(written[0], spec, plan) == []


def test_a_codebook_design_adds_its_table_to_the_project(tmp_path: Path) -> None:
    layers, rows = digits_like(blocks=1)
    layers["blocks.0.mlp.fc1"] = random_layer(32, 64, bits=4, seed=9, name="blocks.0.mlp.fc1",
                                              codec="codebook:3")
    plan = plan_model(layers, rows, get_board("pynq-z2"))
    spec = system_spec(plan, get_board("pynq-z2"), "digits codebook")
    (tcl,) = emit_vivado(spec, plan, tmp_path / "project", False)
    assert "codebook.mem" in tcl.read_text()
    plain, plain_spec = _system("pynq-z2")
    (other,) = emit_vivado(plain_spec, plain, tmp_path / "plain", False)
    assert "codebook.mem" not in other.read_text()


@needs_tclsh
def test_driver_description_matches_the_block_design(tmp_path: Path) -> None:
    from vitfpga.hls.emit.pynq import hw_description

    plan, spec = _system("kv260")
    tcl = _build(tmp_path, "kv260")
    hw = json.loads(json.dumps(hw_description(spec, plan, 8)))  # as the driver reads it
    assert check_vivado_project(tcl, spec, plan, hw) == []
    for key, wrong in (("ctrl_base", spec.ctrl_base + 0x1000), ("engine_cell", "engine"),
                       ("out_bits", spec.out_bits * 2), ("design", "vitfpga_other")):
        problems = check_vivado_project(tcl, spec, plan, {**hw, key: wrong})
        assert any(f"hw.json {key}" in p for p in problems), (key, problems)
    missing = {k: v for k, v in hw.items() if k != "dma_cell"}
    assert any("hw.json has no 'dma_cell'" in p
               for p in check_vivado_project(tcl, spec, plan, missing))


# Each tampering of a good build.tcl, and words the check must say about it.
TAMPERED = {
    "engine address": ("-offset 0x40000000 ", "-offset 0x40020000 ",
                       "vitfpga_engine_0/s_axi_control is at '0x40020000'"),
    "dma range": ("-offset 0x40010000 -range 0x00010000", "-offset 0x40010000 -range 0x00001000",
                  "axi_dma_0/S_AXI_LITE has range"),
    "exec": ("set root [file dirname $here]\n",
             "set root [file dirname $here]\nexec touch @PWNED@\n",
             "command exec is not a known Vivado command"),
    "unknown vivado command in a catch": ("validate_bd_design\n",
                                          "catch {write_cfgmem -force x}\nvalidate_bd_design\n",
                                          "command write_cfgmem is not a known Vivado command"),
    "unclosed brace": ("proc vitfpga_ipdef {name} {", "proc vitfpga_ipdef {name} {{",
                       "syntax error: the command at line @LINE@ is not complete"),
    "unclosed bracket": ("-vlnv [vitfpga_ipdef axi_dma] axi_dma_0]",
                         "-vlnv [vitfpga_ipdef axi_dma axi_dma_0]",
                         "syntax error: the command at line @LINE@ is not complete"),
    "input stream width": ("CONFIG.c_m_axis_mm2s_tdata_width 32 ",
                           "CONFIG.c_m_axis_mm2s_tdata_width 64 ",
                           "DMA c_m_axis_mm2s_tdata_width is '64', expected 32"),
    "output stream width": ("CONFIG.c_s_axis_s2mm_tdata_width 128 ",
                            "CONFIG.c_s_axis_s2mm_tdata_width 64 ",
                            "DMA c_s_axis_s2mm_tdata_width is '64', expected 128"),
    "dma length": ("CONFIG.c_sg_length_width 26 ", "CONFIG.c_sg_length_width 23 ",
                   "DMA c_sg_length_width is '23', expected 26"),
    "scatter gather": ("CONFIG.c_include_sg 0 ", "CONFIG.c_include_sg 1 ",
                       "DMA c_include_sg is '1', expected 0"),
    "cell name": ("[vitfpga_ipdef axi_dma] axi_dma_0]", "[vitfpga_ipdef axi_dma] axi_dma_1]",
                  "no block design cell named 'axi_dma_0'"),
    "clock": ("CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ 100 ", "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ 50 ",
              "PS PCW_FPGA0_PERIPHERAL_FREQMHZ is '50'"),
    "unclocked dma": ("    [get_bd_pins axi_dma_0/m_axi_s2mm_aclk] \\\n", "",
                      "axi_dma_0/m_axi_s2mm_aclk is not on the PS clock"),
    "streams swapped": ("[get_bd_intf_pins vitfpga_engine_0/m_axis] [get_bd_intf_pins axi_dma_0/"
                        "S_AXIS_S2MM]", "[get_bd_intf_pins vitfpga_engine_0/m_axis] "
                        "[get_bd_intf_pins axi_dma_0/M_AXIS_MM2S]",
                        "the engine's m_axis does not feed the DMA's S_AXIS_S2MM"),
    "ddr unmapped": ("assign_bd_address -target_address_space [get_bd_addr_spaces axi_dma_0/"
                     "Data_S2MM] $ddr -force\n", "",
                     "the DMA's Data_S2MM is not mapped to the PS DDR segment"),
    "host-loaded weights in the bitstream": ("    [file join $rtl_dir program.mem] \\\n",
                                             "    [file join $rtl_dir program.mem] \\\n"
                                             "    [file join $rtl_dir weights_ram.mem] \\\n",
                                             "weights_ram.mem is added as a design source"),
    "hwh name": ("file copy -force $hwh [file join $out_dir vitfpga_digits_tiny.hwh]",
                 "file copy -force $hwh [file join $out_dir overlay.hwh]",
                 "the .hwh goes to"),
    "bit folder": ("file copy -force $bit [file join $out_dir vitfpga_digits_tiny.bit]",
                   "file copy -force $bit [file join $here vitfpga_digits_tiny.bit]",
                   "the .bit goes to"),
    "part": ("-part xc7z020clg400-1", "-part xc7z010clg400-1", "the project is for part"),
    "no run check": ("if {[get_property PROGRESS $impl] ne \"100%\" || ![string match "
                     "\"*write_bitstream Complete*\" [get_property STATUS $impl]]} {",
                     "if {0} {", "never checks that the implementation run completed"),
    "board file ignored": ("    set_property board_part $board_part [current_project]\n", "",
                           "board_part set to [], expected ['tul.com.tw:pynq-z2:part0:1.0']"),
}


@needs_tclsh
@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_the_check_catches_a_tampered_script(tmp_path: Path, name: str) -> None:
    plan, spec = _system("pynq-z2")
    tcl = _build(tmp_path)
    old, new, expected = TAMPERED[name]
    pwned = tmp_path / "pwned"
    text = tcl.read_text()
    assert text.count(old) == 1, f"the generated script changed; update the {name!r} case"
    tcl.write_text(text.replace(old, new.replace("@PWNED@", str(pwned))))
    expected = expected.replace("@LINE@", str(text[:text.index(old)].count("\n") + 1))
    problems = check_vivado_project(tcl, spec, plan)
    assert any(expected in p for p in problems), problems
    assert not pwned.exists()  # hidden, not run


@needs_tclsh
def test_failure_branches_stop_with_their_own_message(tmp_path: Path) -> None:
    rtl = _build(tmp_path / "rtl")
    with pytest.raises(TclScriptError, match=r"^vitfpga: .*rtl/vitfpga_engine\.v is missing") as e:
        run_tcl(rtl, "vivado", files_exist=False)
    assert not any(c.name == "create_project" for c in e.value.calls)
    hls = _build(tmp_path / "hls", from_hls=True)
    with pytest.raises(TclScriptError, match=r"Vitis HLS IP is missing .*run `make hls`"):
        run_tcl(hls, "vivado", files_exist=False)
    with pytest.raises(TclScriptError, match=r"bitstream was not written .*runme\.log"):
        run_tcl(rtl, "vivado", runs_complete=False)


def test_check_never_passes_without_tclsh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan, spec = _system("pynq-z2")
    tcl = _build(tmp_path)
    monkeypatch.setattr("vitfpga.sim.tools.shutil.which", lambda _name: None)
    # The probe is cached: look again without tclsh on PATH, and forget that answer afterwards.
    tclsh_status.cache_clear()
    try:
        assert "tclsh is not installed" in str(tclsh_status())
        (problem,) = check_vivado_project(tcl, spec, plan)
        assert "tclsh is not installed" in problem
        assert "tclsh is not installed" in check_hls_script(tcl)[0]
    finally:
        tclsh_status.cache_clear()


def test_emit_is_deterministic(tmp_path: Path) -> None:
    for board, from_hls in (("pynq-z2", False), ("zcu104", True)):
        a = _build(tmp_path / f"a_{board}", board, from_hls).read_bytes()
        b = _build(tmp_path / f"b_{board}", board, from_hls).read_bytes()
        assert a == b
        assert str(tmp_path).encode() not in a  # paths resolve at run time, from the script
        assert a.startswith(b"# Generated by vitfpga") and b"do not edit" in a


def test_system_spec_refuses_what_pynq_cannot_run() -> None:
    layers, rows = digits_like(blocks=2)
    z2 = get_board("pynq-z2")
    plan = plan_model(layers, rows, z2)
    fabric_only = Board("artix", "xc7a100tcsg324-1", 63_400, 126_800, 135, 0, 240, 100.0,
                        has_ps=False)
    with pytest.raises(BadInput, match=r"board 'artix' .* has no processing system"):
        system_spec(plan, fabric_only, "m")
    not_zynq = Board("artix-ps", "xc7a100tcsg324-1", 63_400, 126_800, 135, 0, 240, 100.0)
    with pytest.raises(BadInput, match=r"part 'xc7a100tcsg324-1' is not a Zynq-7000"):
        system_spec(plan, not_zynq, "m")
    odd = fixed_plan(layers, rows, z2, pe=3, simd=4)
    with pytest.raises(BadInput, match=r"output \(PE\) stream is 3 lanes = 24 bits.*powers of two"):
        system_spec(odd, z2, "m")
    with pytest.raises(BadInput, match=r"the plan is for pynq-z2, not kv260"):
        system_spec(plan, get_board("kv260"), "m")


def test_tcl_values_are_plain_words() -> None:
    assert tcl_word("xilinx.com:ip:axi_dma:*") == "xilinx.com:ip:axi_dma:*"
    for bad in ("a b", "$x", "[exec rm]", "x;y", "{a}", '"q"', "#c", "a\\b", ""):
        with pytest.raises(ValueError):
            tcl_word(bad)
    assert tcl_braced('make_external "FIXED_IO, DDR"') == 'make_external "FIXED_IO, DDR"'
    for bad in ("a}", "{", "a\\", "a\nb"):
        with pytest.raises(ValueError):
            tcl_braced(bad)


def _small_hls(tmp_path: Path) -> Path:
    layers = {f"l{i}": random_layer(8, 8, seed=i, name=f"l{i}") for i in range(2)}
    plan = fixed_plan(layers, dict.fromkeys(layers, 2), get_board("pynq-z2"), pe=4, simd=4)
    emit_hls(plan, layers, tmp_path)
    return tmp_path / "hls" / "run_hls.tcl"


@needs_tclsh
def test_run_hls_script_passes_and_its_check_can_fail(tmp_path: Path) -> None:
    tcl = _small_hls(tmp_path)
    assert check_hls_script(tcl) == []
    # Nothing was written or removed by checking it (file mkdir is recorded, not done).
    assert not (tmp_path / "hls" / "tb_data" / "csim").exists()
    text = tcl.read_text()
    for old, new, expected in (
        ("csim_design -argv", "csynth_design\ncsim_design -argv", "expected ['csim_design'"),
        ("cosim_design -argv \"$jobs $here/tb_data/cosim\"\n", "", "flow steps"),
        ("-ipname vitfpga_engine", "-ipname engine", "build.tcl instantiates"),
        ("cd $here\n", "", "does not change to its own folder"),
        ("set_top vitfpga_engine", "set_top vitfpga_engine\nsource other.tcl",
         "command source is not a known Vitis HLS command"),
        ("csynth_design\n", "csynth_design [\n", "syntax error"),
    ):
        assert text.count(old) == 1, old
        tcl.write_text(text.replace(old, new))
        problems = check_hls_script(tcl)
        assert any(expected in p for p in problems), (old, problems)
