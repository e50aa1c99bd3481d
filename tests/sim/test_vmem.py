"""`vitfpga_vmem`, the element-addressed XM and BM: at a program's alignment (ALIGN 4 of 16
lanes, so the rotations take four positions) random masked writes and reads at aligned
addresses match a Python memory on Icarus, across word and bank boundaries; an address the
alignment does not allow stops the simulation with one line rather than reading the wrong
lanes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.sim.test_lane_ram import simulate

INCLUDE = Path(__file__).resolve().parents[2] / "templates"
SOURCES = [INCLUDE / "vit" / "include" / "vitfpga_vmem.v",
           INCLUDE / "rtl" / "include" / "vitfpga_lane_ram.v"]
LANES, EW, WORDS, ALIGN = 16, 8, 9, 4

def _line(wr: tuple[int, list[int], list[bool]] | None, rd: int | None) -> int:
    we, waddr, data, mask = (0, 0, [0] * LANES, [False] * LANES) if wr is None else (1, *wr)
    word = (we << 24) | waddr
    word = (word << LANES * EW) | sum(v << (i * EW) for i, v in enumerate(data))
    word = (word << LANES) | sum(int(m) << i for i, m in enumerate(mask))
    return (((word << 1) | int(rd is not None)) << 24) | (rd or 0)


def _stimulus(seed: int, rounds: int) -> tuple[list[int], dict[int, int]]:
    """Rounds of aligned masked writes, two idle clocks (a write lands a clock after its
    request), then aligned reads; the lines, and clock -> the element values a read must show
    (two clocks after it: its data)."""
    rng = random.Random(seed)
    elements = (WORDS - 1) * LANES  # the last word is the spare an unaligned access spills into
    mem = [0] * (WORDS * LANES)
    # every word written whole first, so no read shows an unwritten (undefined) lane
    lines = [_line((w * LANES, [0] * LANES, [True] * LANES), None) for w in range(WORDS)]
    expect: dict[int, int] = {}
    for _ in range(rounds):
        for _ in range(6):
            addr = rng.randrange(0, elements, ALIGN)
            data = [rng.randrange(1 << EW) for _ in range(LANES)]
            mask = [rng.random() < 0.7 for _ in range(LANES)]
            for i in range(LANES):
                if mask[i]:
                    mem[addr + i] = data[i]
            lines.append(_line((addr, data, mask), None))
        lines += [_line(None, None)] * 2
        for _ in range(6):
            addr = rng.randrange(0, elements, ALIGN)
            expect[len(lines) + 2] = sum(mem[addr + i] << (i * EW) for i in range(LANES))
            lines.append(_line(None, addr))
        lines += [_line(None, None)] * 3
    return lines, expect


def _simulate(tmp_path: Path, lines: list[int]) -> str:
    return simulate(tmp_path, "vitfpga_vmem",
                    {"LANES": LANES, "ALIGN": ALIGN, "EW": EW, "WORDS": WORDS}, (LANES, EW, 24),
                    lines, SOURCES)


@pytest.mark.icarus
def test_aligned_accesses_match_a_python_memory(tmp_path: Path) -> None:
    lines, expect = _stimulus(seed=3, rounds=40)
    got = _simulate(tmp_path, lines).split()
    assert len(got) == len(lines)
    wrong = [(t, f"{e:0{LANES * EW // 4}x}", got[t - 1]) for t, e in expect.items()
             if "x" in got[t - 1] or int(got[t - 1], 16) != e]
    assert not wrong, f"{len(wrong)} of {len(expect)} reads wrong, first: {wrong[:3]}"


@pytest.mark.icarus
def test_an_unaligned_address_stops_the_simulation(tmp_path: Path) -> None:
    lines = [_line(None, 8), _line(None, 6), *[_line(None, None)] * 4]
    out = _simulate(tmp_path, lines)
    assert "not a multiple of ALIGN 4" in out
    assert len([w for w in out.split() if all(c in "0123456789abcdefx" for c in w)]) < len(lines)
