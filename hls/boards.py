"""Device facts from the vendors' data sheets (Xilinx DS190 for Zynq-7000, DS891 for Zynq
UltraScale+, the Kria K26 data sheet DS987): the resources the planner may spend."""

from __future__ import annotations

from dataclasses import dataclass

from vitfpga.errors import BadInput

__all__ = ["BOARDS", "Board", "get_board"]


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    lut: int
    ff: int
    bram36: int
    uram: int
    dsp: int
    clock_mhz: float
    has_ps: bool = True

    @property
    def bram_bits(self) -> int:
        return self.bram36 * 36 * 1024


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("pynq-z1", "xc7z020clg400-1", 53_200, 106_400, 140, 0, 220, 100.0),
        Board("pynq-z2", "xc7z020clg400-1", 53_200, 106_400, 140, 0, 220, 100.0),
        Board("ultra96-v2", "xczu3eg-sbva484-1-i", 70_560, 141_120, 216, 0, 360, 200.0),
        Board("kv260", "xck26-sfvc784-2LV-c", 117_120, 234_240, 144, 64, 1_248, 250.0),
        Board("zcu104", "xczu7ev-ffvc1156-2-e", 230_400, 460_800, 312, 96, 1_728, 250.0),
        Board("zcu102", "xczu9eg-ffvb1156-2-e", 274_080, 548_160, 912, 0, 2_520, 250.0),
    )
}


def get_board(name: str) -> Board:
    key = name.strip().lower()
    if key not in BOARDS:
        raise BadInput(f"unknown board '{name}'; known boards: {', '.join(BOARDS)}")
    return BOARDS[key]
