"""What build.tcl does for PYNQ and for the Vivado installs it meets (issue 21): the DMA and GPIO
at exactly the versions PYNQ binds its drivers to, the newest of every other IP and of the board
file, the LED GPIO and its board connection, address segments found by path where a pin finds
none, and the .xsa beside the .bit and .hwh. Each is checked under tclsh with stubbed Vivado
commands (vitfpga.sim.tclcheck), and each check must catch a script that gets it wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hls.test_vivado import _build, _system, needs_tclsh
from vitfpga.hls.emit.vivado import board_part_glob
from vitfpga.hls.plan.system import DMA_VLNV, GPIO_VLNV
from vitfpga.sim.tclcheck import TclScriptError, check_vivado_project, run_tcl

XSA = "write_hw_platform -fixed -include_bit -force [file join $out_dir vitfpga_digits_tiny.xsa]"


def test_board_part_glob_takes_any_vendor_and_version() -> None:
    assert board_part_glob("xilinx.com:kv260_som:part0:1.4") == "*:kv260_som:part0:*"
    assert board_part_glob("tul.com.tw:pynq-z2:part0:1.0") == "*:pynq-z2:part0:*"
    with pytest.raises(ValueError):
        board_part_glob("pynq-z2")


@needs_tclsh
def test_the_built_design_is_what_pynq_binds_to(tmp_path: Path) -> None:
    tcl = _build(tmp_path)
    parts = ["tul.com.tw:pynq-z2:part0:1.0", "tul.com.tw:pynq-z2:part0:1.1", "x:zcu104:part0:9"]
    calls = run_tcl(tcl, "vivado", board_parts=parts)
    cells = {c.positional()[-1]: c.option("-vlnv") for c in calls if c.name == "create_bd_cell"}
    assert cells["axi_dma_0"] == DMA_VLNV and cells["leds"] == GPIO_VLNV
    assert cells["rst_ps_pl"] == "xilinx.com:ip:proc_sys_reset:10.0"  # newest, not last found
    # The newest installed board file of any version, and the LEDs on its interface.
    assert [c.args[1] for c in calls if c.name == "set_property" and c.args[0] == "board_part"] \
        == ["tul.com.tw:pynq-z2:part0:1.1"]
    (link,) = [c for c in calls if c.name == "apply_board_connection"]
    assert (link.option("-board_interface"), link.option("-ip_intf")) == ("leds_4bits", "leds/GPIO")
    # No board file: the part alone, the GPIO on no pins.
    bare = run_tcl(tcl, "vivado", board_files=False, board_parts=parts)
    assert not [c for c in bare if c.name == "apply_board_connection"
                or (c.name == "set_property" and c.args[:1] == ("board_part",))]


@needs_tclsh
@pytest.mark.parametrize("from_hls,segment", [(False, "reg0"), (True, "Reg")], ids=["rtl", "hls"])
def test_segments_are_found_by_path_where_the_pin_finds_none(tmp_path: Path, from_hls: bool,
                                                             segment: str) -> None:
    tcl = _build(tmp_path, "kv260", from_hls)
    calls = run_tcl(tcl, "vivado", pin_segments=False)
    assigned = [c.positional()[-1] for c in calls if c.name == "assign_bd_address"]
    assert assigned[:3] == [f"/vitfpga_engine_0/s_axi_control/{segment}",
                            "/axi_dma_0/S_AXI_LITE/Reg", "/leds/S_AXI/Reg"]
    assert assigned[3:] == ["/ps/SAXIGP2/HP0_DDR_LOW"] * 2


@needs_tclsh
def test_a_vivado_without_the_pinned_ips_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TclScriptError, match=r"^vitfpga: this Vivado has no "
                                             r"xilinx\.com:ip:axi_dma:7\.1 IP") as e:
        run_tcl(_build(tmp_path), "vivado", pinned_ips=False)
    assert not [c for c in e.value.calls if c.name == "create_bd_cell" and "axi_dma" in str(c)]


# Each tampering of a good pynq-z2 build.tcl, and words the check must say about it.
TAMPERED = {
    "dma version": ("axi_dma xilinx.com:ip:axi_dma:7.1", "axi_dma xilinx.com:ip:axi_dma:7.2",
                    "cell 'axi_dma_0' is 'xilinx.com:ip:axi_dma:7.2', expected exactly"),
    "dma not pinned": (" axi_dma xilinx.com:ip:axi_dma:7.1", "",
                       "cell 'axi_dma_0' is 'xilinx.com:ip:axi_dma:10.0', expected exactly"),
    "gpio not pinned": (" axi_gpio xilinx.com:ip:axi_gpio:2.0", "",
                        "cell 'leds' is 'xilinx.com:ip:axi_gpio:10.0', expected exactly"),
    "no -all": ("get_ipdefs -all -filter $ipi $vlnv", "get_ipdefs -filter $ipi $vlnv",
                "without -all and -filter"),
    "no IPI filter": ('get_ipdefs -all -filter $ipi "xilinx', 'get_ipdefs -all "xilinx',
                      "without -all and -filter"),
    "first version found": ("lsort -dictionary -index end $fields] end]",
                            "lsort -dictionary -index end $fields] 0]",
                            "not the newest version the catalogue offers"),
    "text sort of versions": ("lsort -dictionary -index end", "lsort -index end",
                              "not the newest version the catalogue offers"),
    "exact board part": ("-latest_file_version *:pynq-z2:part0:*",
                         "-latest_file_version tul.com.tw:pynq-z2:part0:1.0",
                         "not the glob '*:pynq-z2:part0:*'"),
    "gpio not on the interconnect": (
        "connect_bd_intf_net [get_bd_intf_pins ctrl_interconnect/M02_AXI] "
        "[get_bd_intf_pins leds/S_AXI]\n", "", "the GPIO's S_AXI are not on three masters"),
    "two interconnect masters": ("CONFIG.NUM_MI 3", "CONFIG.NUM_MI 2",
                                 "has NUM_SI/NUM_MI (1, 2), expected (1, 3)"),
    "gpio unclocked": ("    [get_bd_pins leds/s_axi_aclk] \\\n", "",
                       "leds/s_axi_aclk is not on the PS clock"),
    "gpio not reset": ("    [get_bd_pins leds/s_axi_aresetn] \\\n", "",
                       "leds/s_axi_aresetn is not on the reset block's"),
    "gpio address": ("-offset 0x40020000 ", "-offset 0x40030000 ", "leds/S_AXI is at '0x40030000'"),
    "gpio width": ("CONFIG.C_GPIO_WIDTH 4 ", "CONFIG.C_GPIO_WIDTH 8 ",
                   "GPIO C_GPIO_WIDTH is '8', expected 4"),
    "gpio inputs": ("CONFIG.C_ALL_OUTPUTS 1", "CONFIG.C_ALL_OUTPUTS 0",
                    "GPIO C_ALL_OUTPUTS is '0', expected 1"),
    "leds not on the board": ("    apply_board_connection -board_interface leds_4bits -ip_intf "
                              "leds/GPIO -diagram $design\n", "",
                              "board file installed: board connections [], expected"),
    "leds without the board file": ("$use_board_preset && [llength", "1 || [llength",
                                    "board file missing: board connections [('leds_4bits'"),
    "no segment fallback": ("        set segs [get_bd_addr_segs -quiet $path]\n", "",
                            "segments found by path only: vitfpga: expected one address"),
    "no xsa": (XSA + "\n", "", "0 write_hw_platform calls, expected 1"),
    "xsa without the bitstream": (XSA, XSA.replace(" -include_bit", ""),
                                  "write_hw_platform without -include_bit"),
    "xsa elsewhere": (XSA, XSA.replace("$out_dir", "$here"), "the .xsa goes to"),
    "missing pinned ip goes on": ('error "vitfpga: this Vivado has no $vlnv IP',
                                  'puts "vitfpga: this Vivado has no $vlnv IP',
                                  "lacks the pinned IP versions, build.tcl does not stop"),
}


@needs_tclsh
@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_the_check_catches_a_tampered_script(tmp_path: Path, name: str) -> None:
    plan, spec = _system("pynq-z2")
    tcl = _build(tmp_path)
    assert check_vivado_project(tcl, spec, plan) == []
    old, new, expected = TAMPERED[name]
    text = tcl.read_text()
    assert text.count(old) == 1, f"the generated script changed; update the {name!r} case"
    tcl.write_text(text.replace(old, new))
    problems = check_vivado_project(tcl, spec, plan)
    assert any(expected in p for p in problems), problems


@needs_tclsh
def test_xsa_before_the_run_check_is_caught(tmp_path: Path) -> None:
    plan, spec = _system("pynq-z2")
    tcl = _build(tmp_path)
    text = tcl.read_text().replace(XSA + "\n", "")
    at = "launch_runs impl_1"
    tcl.write_text(text.replace(at, XSA + "\n" + at))
    problems = check_vivado_project(tcl, spec, plan)
    assert any("before the script checks that the bitstream was written" in p
               for p in problems), problems
