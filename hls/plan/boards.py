"""Device facts from the vendors' data sheets (Xilinx DS190 for Zynq-7000, DS891 for Zynq
UltraScale+, the Kria K26 data sheet DS987): the resources the planner may spend. Users add
their own boards from a TOML file (`--boards-file`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vitfpga.errors import BadInput
from vitfpga.tomlfile import read_toml, typed_value

__all__ = ["BOARDS", "FAMILIES", "PS_KINDS", "Board", "get_board", "load_boards_file",
           "part_family", "part_ps", "register_boards_file"]

# Yosys `synth_xilinx -family` values the planner's resource figures are calibrated for.
FAMILIES = ("xc7", "xcup")
# The processing system a board's PYNQ project is built around (hls.plan.system.PS_FAMILIES),
# or none (a fabric-only part).
PS_KINDS = ("zynq7", "zynqmp", "none")


def part_family(part: str) -> str:
    """The Yosys family of a part number: xc7 (Zynq-7000, 7 series) or xcup (Zynq UltraScale+
    MPSoC, Kria K26/K24, Virtex/Kintex UltraScale+); "" when no rule knows it."""
    p = part.strip().lower()
    if p.startswith("xc7"):
        return "xc7"
    if p.startswith(("xczu", "xck26", "xck24")) or re.match(r"xc[kv]u\d+p", p):
        return "xcup"
    return ""


def part_ps(part: str) -> str:
    """The processing system of a part number: zynq7 (xc7z*), zynqmp (xczu*, xck26, xck24), or
    "" when the part has none that PYNQ knows."""
    p = part.strip().lower()
    if p.startswith("xc7z"):
        return "zynq7"
    if p.startswith(("xczu", "xck26", "xck24")):
        return "zynqmp"
    return ""


@dataclass(frozen=True)
class Board:
    """Every fact about a board in one record: resources and clock for the planner, the part and
    Vivado board file for the project, the Yosys family, the processing system. `family` and
    `ps` left empty are derived from the part ("" stays when the part is unknown to the rules:
    the steps needing them refuse then, in one line)."""

    name: str
    part: str
    lut: int
    ff: int
    bram36: int
    uram: int
    dsp: int
    clock_mhz: float
    has_ps: bool = True
    board_part: str = ""  # Vivado board_part; "" targets the part alone
    family: str = ""  # FAMILIES
    ps: str = ""  # PS_KINDS

    def __post_init__(self) -> None:
        # Frozen record: derived defaults are filled in once, here.
        if not self.family:
            object.__setattr__(self, "family", part_family(self.part))
        if not self.ps:
            object.__setattr__(self, "ps", part_ps(self.part) if self.has_ps else "none")
        object.__setattr__(self, "has_ps", self.ps != "none")

    @property
    def bram_bits(self) -> int:
        return self.bram36 * 36 * 1024

    @property
    def synth_family(self) -> str:
        """The Yosys family, or BadInput when neither the board nor its part names one."""
        if not self.family:
            raise BadInput(f"board '{self.name}': part {self.part!r} has no Yosys family known "
                           f"for it (xc7* -> xc7, xczu*/xck26/xcku*p/xcvu*p -> xcup); set "
                           f"family = \"xc7\" or \"xcup\" in its [boards.{self.name}] table")
        return self.family


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        # board_part: the Vivado board files, used when the install has them (the Xilinx board
        # store holds those not shipped with Vivado), else the part alone is targeted.
        Board("pynq-z1", "xc7z020clg400-1", 53_200, 106_400, 140, 0, 220, 100.0,
              board_part="www.digilentinc.com:pynq-z1:part0:1.0"),
        Board("pynq-z2", "xc7z020clg400-1", 53_200, 106_400, 140, 0, 220, 100.0,
              board_part="tul.com.tw:pynq-z2:part0:1.0"),
        Board("ultra96-v2", "xczu3eg-sbva484-1-i", 70_560, 141_120, 216, 0, 360, 200.0,
              board_part="avnet.com:ultra96v2:part0:1.2"),
        Board("kv260", "xck26-sfvc784-2LV-c", 117_120, 234_240, 144, 64, 1_248, 250.0,
              board_part="xilinx.com:kv260_som:part0:1.4"),
        Board("zcu104", "xczu7ev-ffvc1156-2-e", 230_400, 460_800, 312, 96, 1_728, 250.0,
              board_part="xilinx.com:zcu104:part0:1.1"),
        Board("zcu102", "xczu9eg-ffvb1156-2-e", 274_080, 548_160, 912, 0, 2_520, 250.0,
              board_part="xilinx.com:zcu102:part0:3.4"),
    )
}


def get_board(name: str) -> Board:
    key = name.strip().lower()
    if key not in BOARDS:
        raise BadInput(f"unknown board '{name}'; known boards: {', '.join(BOARDS)}")
    return BOARDS[key]


_PLAIN = re.compile(r"^[A-Za-z0-9_.-]+$")
_BOARD_PART = re.compile(r"^[A-Za-z0-9_.:-]+$")  # vendor:board:part0:version
_BOARD_KEYS = {"part": str, "lut": int, "ff": int, "bram36": int, "uram": int, "dsp": int,
               "clock_mhz": float, "has_ps": bool, "board_part": str, "family": str, "ps": str}
_OPTIONAL = {"has_ps", "board_part", "family", "ps"}


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
        board_part = "vendor:board:part0:1.0"  # optional: the Vivado board file
        family = "xcup"  # optional: the Yosys family (xc7, xcup); default from the part
        ps = "zynqmp"  # optional: zynq7, zynqmp or none; default from the part
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
        boards[name.lower()] = _board(name, table, where)
    return boards


def _board(name: str, table: dict[str, object], where: str) -> Board:
    """One [boards.NAME] table as a Board, or BadInput naming the table and the key."""
    unknown = set(table) - set(_BOARD_KEYS)
    missing = set(_BOARD_KEYS) - set(table) - _OPTIONAL
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
    if not _BOARD_PART.match(str(values.get("board_part", "x"))):
        raise BadInput(f"{where}: board_part may hold only letters, digits, '.', '_', '-' and "
                       f"':' (vendor:board:part0:version; it reaches TCL)")
    for key, allowed in (("family", FAMILIES), ("ps", PS_KINDS)):
        if key in values and values[key] not in allowed:
            raise BadInput(f"{where}: {key} = {values[key]!r} is not one of "
                           f"{', '.join(allowed)}")
    if values.get("has_ps") is False and values.get("ps", "none") != "none":
        raise BadInput(f"{where}: has_ps = false contradicts ps = {values['ps']!r}")
    return Board(name=name.lower(), **values)  # type: ignore[arg-type]


def register_boards_file(path: Path | None) -> None:
    """Add a file's boards to BOARDS (a user board may shadow a built-in one on purpose)."""
    if path is not None:
        BOARDS.update(load_boards_file(path))
