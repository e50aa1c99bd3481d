"""Device facts from the vendors' data sheets (Xilinx DS190 for Zynq-7000, DS891 for Zynq
UltraScale+, the Kria K26 data sheet DS987): the resources the planner may spend. Users add
their own boards from a TOML file (`--boards-file`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vitfpga.errors import BadInput
from vitfpga.tomlfile import read_toml, typed_value

__all__ = ["BOARDS", "Board", "get_board", "load_boards_file", "register_boards_file"]


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


_PLAIN = re.compile(r"^[A-Za-z0-9_.-]+$")
_BOARD_KEYS = {"part": str, "lut": int, "ff": int, "bram36": int, "uram": int, "dsp": int,
               "clock_mhz": float, "has_ps": bool}


def load_boards_file(path: Path) -> dict[str, Board]:
    """User boards from TOML, one table per board:

        [boards.my-zu2]
        part = "xczu2cg-sbva484-1-e"
        lut = 47232
        ff = 94464
        bram36 = 150
        uram = 0
        dsp = 240
        clock_mhz = 200.0
    """
    raw = read_toml(path, "boards file")
    tables = raw.get("boards")
    if not isinstance(tables, dict) or not tables or set(raw) != {"boards"}:
        raise BadInput(f"boards file {path}: expected [boards.NAME] tables and nothing else")
    boards = {}
    for name, table in tables.items():
        where = f"boards file {path}: [boards.{name}]"
        if not isinstance(table, dict):
            raise BadInput(f"{where} must be a table")
        unknown = set(table) - set(_BOARD_KEYS)
        missing = set(_BOARD_KEYS) - set(table) - {"has_ps"}
        if unknown or missing:
            raise BadInput(f"{where}: unknown keys {sorted(unknown)}, missing keys "
                           f"{sorted(missing)}")
        values: dict[str, object] = {}
        for key, value in table.items():
            try:
                value = typed_value(key, value, _BOARD_KEYS[key])
            except BadInput as e:
                raise BadInput(f"{where}: {e}") from None
            if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0 \
                    and key != "uram":
                raise BadInput(f"{where}: '{key}' must be positive")
            values[key] = value
        if not _PLAIN.match(name) or not _PLAIN.match(str(values["part"])):
            raise BadInput(f"{where}: board and part names may hold only letters, digits, "
                           f"'.', '_' and '-' (they reach TCL and file names)")
        boards[name.lower()] = Board(name=name.lower(), **values)
    return boards


def register_boards_file(path: Path | None) -> None:
    """Add a file's boards to BOARDS (a user board may shadow a built-in one on purpose)."""
    if path is not None:
        BOARDS.update(load_boards_file(path))
