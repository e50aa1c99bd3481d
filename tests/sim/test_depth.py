"""The logic-depth pass (vitfpga.sim.depth) and the level budget (hls.plan.timing).

The graph pass is checked on hand-written JSON netlists (no Yosys) and on one Yosys synthesis
of a design whose depth is known by construction: instantiated LUT6 primitives, which Yosys
keeps as they are, chained between registers. Real units are measured too: the LUT multiplier,
and the vector LayerNorm and softmax and the packed dot product against the level budget on
both families (one lane each, whose datapaths are those of any lane count).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vitfpga.errors import BadInput, VerificationFailed
from vitfpga.hls.emit.templating import template_root
from vitfpga.hls.plan.boards import get_board
from vitfpga.hls.plan.timing import LEVEL_BUDGET, board_level_budget, level_budget
from vitfpga.runtime.intmath import EXP2_LUT
from vitfpga.sim.depth import DSP_LEVELS, logic_depth, netlist_depth
from vitfpga.sim.synth import run_synth_xilinx

COMB, REGD = 5, 3  # LUT6 stages of the unregistered and the registered chain

# Two chains of LUT6 instances fed by one input register: `c` unregistered (COMB levels to
# `yc`), `r` with a register after every stage (1 level each).
CHAINS = f"""\
module chains (input wire clk, input wire [5:0] x, output reg yc, output reg yr);
    reg [5:0] xr;
    wire [{COMB}:0] c;
    wire [{REGD}:0] r;
    always @(posedge clk) xr <= x;
    assign c[0] = xr[0];
    assign r[0] = xr[0];
    genvar i;
    generate for (i = 0; i < {COMB}; i = i + 1) begin : gc
        LUT6 #(.INIT(64'h6996966996696996)) u (.O(c[i+1]), .I0(c[i]), .I1(xr[1]),
            .I2(xr[2]), .I3(xr[3]), .I4(xr[4]), .I5(xr[5]));
    end endgenerate
    generate for (i = 0; i < {REGD}; i = i + 1) begin : gr
        wire t;
        reg q;
        LUT6 #(.INIT(64'h6996966996696996)) u (.O(t), .I0(r[i]), .I1(xr[1]), .I2(xr[2]),
            .I3(xr[3]), .I4(xr[4]), .I5(xr[5]));
        always @(posedge clk) q <= t;
        assign r[i+1] = q;
    end endgenerate
    always @(posedge clk) begin
        yc <= c[{COMB}];
        yr <= r[{REGD}];
    end
endmodule
"""


# --- hand-written netlists ----------------------------------------------------------------------


def _cell(ctype: str, pins: dict[str, tuple[str, list[Any]]], **params: str) -> dict[str, Any]:
    return {"type": ctype, "parameters": params,
            "port_directions": {p: d for p, (d, _) in pins.items()},
            "connections": {p: bits for p, (_, bits) in pins.items()}}


def _ff(d: int, q: int) -> dict[str, Any]:
    return _cell("FDRE", {"C": ("input", [1]), "CE": ("input", ["1"]), "R": ("input", ["0"]),
                          "D": ("input", [d]), "Q": ("output", [q])})


def _netlist(cells: dict[str, dict[str, Any]], names: dict[str, list[int]]) -> dict[str, Any]:
    ports = {"clk": {"direction": "input", "bits": [1]}}
    netnames = {n: {"hide_name": 0, "bits": b} for n, b in names.items()}
    return {"modules": {"t": {"ports": ports, "cells": cells, "netnames": netnames}}}


def _carry_chain(n: int) -> dict[str, dict[str, Any]]:
    """FF(10) -> n CARRY4 (CO[3] -> CI) -> FF; O/CO bits from 100 on."""
    cells = {"src": _ff(2, 10)}
    ci = 10
    for i in range(n):
        co = list(range(100 + 8 * i, 104 + 8 * i))
        o = list(range(104 + 8 * i, 108 + 8 * i))
        cells[f"c{i}"] = _cell("CARRY4", {"CI": ("input", [ci]), "CYINIT": ("input", ["0"]),
                                          "DI": ("input", [10, 10, 10, 10]),
                                          "S": ("input", [10, 10, 10, 10]),
                                          "O": ("output", o), "CO": ("output", co)})
        ci = co[3]
    cells["dst"] = _ff(ci, 11)
    return cells


def test_carry_chain_counts_a_level_per_cell() -> None:
    r = netlist_depth(_netlist(_carry_chain(8), {"acc": [10], "sum": [11]}), "t", "xc7")
    assert r.levels == 8 and [s.type for s in r.path] == ["CARRY4"] * 8
    assert r.start == "acc (FDRE)" and r.end == "sum (FDRE.D)"
    assert r.route() == "acc (FDRE) -> CARRY4 x8 -> sum (FDRE.D)"
    assert r.composition() == "8 CARRY4" and json.loads(r.to_json())["levels"] == 8
    assert r.endpoints[0] == ("sum (FF.D)", 8) and r.over(7) == [("sum (FF.D)", 8)]
    assert r.over(8) == []
    # UltraScale+: a CARRY8 holds two chained CARRY4, so 32 bits are 4 levels, 36 bits 5.
    up = netlist_depth(_netlist(_carry_chain(8), {"acc": [10], "sum": [11]}), "t", "xcup")
    assert up.levels == 4 and up.route() == "acc (FDRE) -> CARRY8 x4 -> sum (FDRE.D)"
    assert netlist_depth(_netlist(_carry_chain(9), {}), "t", "xcup").levels == 5
    # A top whose parameters were set is `$paramod\\t\\...` in the netlist, marked top.
    renamed = _netlist(_carry_chain(2), {})
    renamed["modules"] = {"$paramod\\t\\N=2": {**renamed["modules"]["t"],
                                                "attributes": {"top": "1"}}}
    assert netlist_depth(renamed, "t").levels == 2
    with pytest.raises(VerificationFailed, match="module u missing"):
        netlist_depth(renamed, "u")


def test_lutram_read_is_one_level_and_its_data_ends_a_path() -> None:
    # FF(10) -> LUT2 -> RAM64X1D.DPRA0 -> DPO -> FF: 2 levels; the LUT also feeds D (1 level).
    ram_pins = {"WCLK": ("input", [1]), "WE": ("input", ["1"]), "D": ("input", [20]),
                **{f"A{i}": ("input", ["0"]) for i in range(6)},
                **{f"DPRA{i}": ("input", [20 if i == 0 else "0"]) for i in range(6)},
                "SPO": ("output", [21]), "DPO": ("output", [22])}
    cells = {"src": _ff(2, 10),
             "l": _cell("LUT2", {"I0": ("input", [10]), "I1": ("input", [10]),
                                 "O": ("output", [20])}),
             "m": _cell("RAM64X1D", ram_pins), "dst": _ff(22, 11)}
    r = netlist_depth(_netlist(cells, {"q": [10], "y": [11]}), "t")
    assert r.levels == 2 and [s.type for s in r.path] == ["LUT2", "RAM64X1D"]
    assert dict(r.endpoints)["y (FF.D)"] == 2
    assert any(name.endswith("(RAM64X1D.D)") and lv == 1 for name, lv in r.endpoints)


def _dsp(preg: str, areg: str) -> dict[str, Any]:
    return _cell("DSP48E1", {"CLK": ("input", [1]), "A": ("input", [10]), "B": ("input", [10]),
                             "P": ("output", [30])},
                 PREG=preg, AREG=areg, BREG="1", MREG="0")


def test_dsp_without_p_register_is_combinational() -> None:
    names = {"q": [10], "y": [11]}
    comb = netlist_depth(_netlist({"src": _ff(2, 10), "d": _dsp("0", "0"), "dst": _ff(30, 11)},
                                  names), "t")
    assert comb.levels == DSP_LEVELS and comb.comb_dsp == 1 and comb.start == "q (FDRE)"
    # A registered at the input: the DSP still adds its levels, from its own register.
    inner = netlist_depth(_netlist({"src": _ff(2, 10), "d": _dsp("0", "1"),
                                    "dst": _ff(30, 11)}, names), "t")
    assert inner.levels == DSP_LEVELS
    assert inner.start == "internal register of DSP48E1 (A<-q, B<-q)"
    regd = netlist_depth(_netlist({"src": _ff(2, 10), "d": _dsp("1", "0"),
                                   "dst": _ff(30, 11)}, names), "t")
    assert regd.levels == 0 and regd.comb_dsp == 0


def test_a_registered_dsps_c_operand_ends_a_path() -> None:
    """A DSP48's C is its third operand, not a clock as a flip-flop's C is: two LUTs into the C
    input of a DSP with P registered are a 2-level path."""
    cells = {"src": _ff(2, 10),
             "l1": _cell("LUT1", {"I0": ("input", [10]), "O": ("output", [20])}),
             "l2": _cell("LUT1", {"I0": ("input", [20]), "O": ("output", [21])}),
             "d": _cell("DSP48E1", {"CLK": ("input", [1]), "A": ("input", [10]),
                                    "B": ("input", [10]), "C": ("input", [21]),
                                    "P": ("output", [30])},
                        PREG="1", AREG="1", BREG="1", MREG="0", CREG="0"),
             "dst": _ff(30, 11)}
    r = netlist_depth(_netlist(cells, {"q": [10], "c_in": [21]}), "t")
    assert r.levels == 2 and r.end.endswith("(DSP48E1.C)"), (r.levels, r.end)


def test_a_combinational_loop_is_refused() -> None:
    cells = {"a": _cell("LUT1", {"I0": ("input", [21]), "O": ("output", [20])}),
             "b": _cell("LUT1", {"I0": ("input", [20]), "O": ("output", [21])}),
             "dst": _ff(20, 11)}
    with pytest.raises(VerificationFailed, match="combinational loop through 2 cells"):
        netlist_depth(_netlist(cells, {}), "t")


def test_parameters_reach_yosys_only_when_safe(tmp_path: Path) -> None:
    src = tmp_path / "t.v"
    src.write_text("module t; endmodule\n")
    for bad in ("a b", 'x"; shell', 1.5, True):
        with pytest.raises(BadInput, match="Yosys"):
            run_synth_xilinx([src], tmp_path, top="t", family="xc7", params={"P": bad})
    with pytest.raises(BadInput, match="family"):
        run_synth_xilinx([src], tmp_path, top="t", family="xc9500")
    assert not (tmp_path / "yosys.log").exists()  # refused before Yosys ran


# --- the budget rule ----------------------------------------------------------------------------


def test_budget_anchors_and_scaling() -> None:
    assert LEVEL_BUDGET == {("xcup", 250.0): 8, ("xc7", 100.0): 12}
    for (family, mhz), levels in LEVEL_BUDGET.items():
        assert level_budget(family, mhz) == levels
    assert board_level_budget(get_board("kv260")) == 8
    assert board_level_budget(get_board("pynq-z2")) == 12
    assert board_level_budget(get_board("ultra96-v2")) == 10  # 200 MHz: 2000 / 200
    assert level_budget("xc7", 150.0) == 8 and level_budget("xcup", 300.0) == 6
    assert level_budget("xc7", 50.0) == 24  # half the clock, twice the levels
    with pytest.raises(BadInput, match="no room"):
        level_budget("xcup", 2500.0)
    with pytest.raises(BadInput, match="family"):
        level_budget("xc9500", 100.0)


# --- Yosys ---------------------------------------------------------------------------------------


@pytest.mark.yosys
def test_known_depth_after_synthesis(tmp_path: Path) -> None:
    src = tmp_path / "chains.v"
    src.write_text(CHAINS)
    r = logic_depth([src], "chains", "xc7", tmp_path / "build")
    assert r.levels == COMB, r.route()
    assert [s.type for s in r.path] == ["LUT6"] * COMB
    # xr[0] is also c[0] and r[0]: the start is named by all three, a register.
    assert r.start == "c[0]=r[0]=xr[0] (FDRE)" and r.end == "yc (FDRE.D)"
    assert r.path[-1].net == f"c[{COMB}]"
    ends = dict(r.endpoints)
    assert ends["r[*]=gr[*].q (FF.D)"] == 1  # every registered stage is one level deep
    assert ends["yc (FF.D)"] == COMB and ends["yr (FF.D)"] == 0
    assert r.cells["LUT6"] == COMB + REGD and not r.unknown
    assert (tmp_path / "build" / "netlist.json").is_file()
    assert (tmp_path / "build" / "depth_report.json").is_file()


@pytest.mark.yosys
def test_lut_multiplier_fits_the_budget(tmp_path: Path) -> None:
    src = template_root() / "rtl" / "include" / "vitfpga_lutmul.v"
    r = logic_depth([src], "vitfpga_lutmul", "xcup", tmp_path / "build", params={"WBITS": 4})
    # Port to port (the engine registers both sides). The product's top bit depends on all 12
    # input bits, which one LUT6 level cannot combine: 2 levels at least.
    assert r.start.startswith(("port w[", "port x[")) and r.end.startswith("port p[")
    assert 2 <= r.levels <= level_budget("xcup", 250.0), r.route()
    assert r.levels == len(r.path) and r.family == "xcup" and r.seconds > 0


# --- the vector units and the packed multiplier against the budget ---------------------------

_BOARDS = {"xc7": "pynq-z2", "xcup": "kv260"}


def _unit_job(unit: str, family: str, work: Path) -> tuple[list[Path], str, dict[str, int],
                                                            list[Path]]:
    """(sources, top, parameters, $readmemh files) of one unit at a representative size: one
    lane (the per-row and per-lane datapaths are those of any L, at DeiT-Tiny's widths: d 192,
    197 tokens), the packed dot product at the benchmark's N and SHIFT per family."""
    vit = template_root() / "vit" / "include"
    if unit == "layernorm_vec":
        rng = np.random.default_rng(0)
        (work / "ln_gamma.mem").write_text("".join(
            f"{int(v) & 0xFFFF:04x}\n" for v in rng.integers(-2**15, 2**15, 192)))
        (work / "ln_beta.mem").write_text("".join(
            f"{int(v) & 0xFFFFFFFF:08x}\n" for v in rng.integers(-2**31, 2**31, 192)))
        return ([vit / "vitfpga_layernorm_vec.v", vit / "vitfpga_fifo.v"],
                "vitfpga_layernorm_vec", {"DMAX": 192, "PDEPTH": 192, "L": 1},
                [work / "ln_gamma.mem", work / "ln_beta.mem"])
    if unit == "softmax_vec":
        (work / "exp2_lut.mem").write_text("".join(f"{int(v):06x}\n" for v in EXP2_LUT))
        return ([vit / "vitfpga_softmax_vec.v", vit / "vitfpga_fifo.v"], "vitfpga_softmax_vec",
                {"TMAX": 197, "L": 1}, [work / "exp2_lut.mem"])
    n, shift = (8, 18) if family == "xcup" else (2, 16)
    return ([template_root() / "rtl" / "include" / "vitfpga_mulpack.v"], "vitfpga_dot2x8",
            {"N": n, "SHIFT": shift}, [])


# Each unit on the family where it sits nearest its budget (benchmarks/logic_depth.py measures
# both, and the packed multipliers): a synthesis of a vector unit takes 15-25 s.
@pytest.mark.yosys
@pytest.mark.parametrize(("unit", "family"), [("layernorm_vec", "xc7"), ("softmax_vec", "xc7")])
def test_vector_units_fit_the_budget(tmp_path: Path, unit: str, family: str) -> None:
    sources, top, params, mems = _unit_job(unit, family, tmp_path)
    r = logic_depth(sources, top, family, tmp_path / "build", params=params, mem_files=mems)
    budget = board_level_budget(get_board(_BOARDS[family]))
    assert r.levels <= budget, f"{unit} on {family}: {r.levels} > {budget}: {r.route()}"
    assert not r.over(budget) and not r.unknown
    # A real measurement: several levels deep (a wide add or a wide mux), DSPs inferred.
    assert r.levels >= 5 and len(r.path) >= 2, r.route()
    assert sum(v for k, v in r.cells.items() if k.startswith("DSP48")) > 0, r.cells


@pytest.mark.yosys
def test_a_ternary_tree_stage_is_two_luts_and_its_carries(tmp_path: Path) -> None:
    """A pair's field tree (vitfpga_addtree_pipe TERNARY, 32 x 10 bits): a bit's majority (a
    LUT6_2's O5) feeds the next bit's LUT but depends only on its own bit's inputs, so a stage
    is register, O5, O6, the carry chain (two CARRY8 at 15 bits), register: no chain of LUTs."""
    src = template_root() / "rtl" / "include" / "vitfpga_addtree.v"
    r = logic_depth([src], "vitfpga_addtree_pipe", "xcup", tmp_path / "build",
                    params={"N": 32, "IW": 10, "OW": 15, "TERNARY": 1})
    assert [s.type for s in r.path] == ["LUT6_2", "LUT6_2", "CARRY8", "CARRY8"], r.route()
    assert r.levels <= 4, r.route()
