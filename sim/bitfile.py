"""The simulated board's bitstream: a real `.bit` container around a fingerprint of the RTL.

PYNQ loads `<design>.bit` with `<design>.hwh` beside it; its remote client parses the `.bit`
header, converts the configuration data to the `.bin` the board's fpga_manager takes (32-bit
words byte-swapped) and writes it to the board. The simulated board has no configuration
memory: its "configuration data" is a marker and the SHA-256 of the project's RTL sources, so
programming the board with it means "run this RTL", and a bitstream of another build of the
design is refused, as a board refuses a corrupt one.

Container format (Xilinx .bit, as pynq's `parse_bit_header` reads it): a 2-byte length and
that many header bytes, a 2-byte field, then key/length/value fields `a` (design;UserID;
Version), `b` (part), `c` (date), `d` (time), and `e` with a 4-byte length and the data.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

__all__ = ["MARKER", "bin_fingerprint", "rtl_fingerprint", "simulated_bit"]

MARKER = b"VITFPGA-SIMULATED-BITSTREAM\x00"
_SYNC = bytes.fromhex("ffffffff" * 2 + "000000bb" + "11220044" + "ffffffff" * 2 + "aa995566")
_HEADER = bytes.fromhex("0ff00ff00ff00ff000")


def rtl_fingerprint(rtl_dir: Path) -> str:
    """SHA-256 over the names and bytes of every file in `rtl_dir` (sorted): what the
    simulated board runs."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(rtl_dir).rglob("*") if p.is_file()):
        h.update(path.relative_to(rtl_dir).as_posix().encode() + b"\x00")
        h.update(path.read_bytes())
    return h.hexdigest()


def _field(key: bytes, text: str) -> bytes:
    value = text.encode("ascii") + b"\x00"
    return key + struct.pack(">H", len(value)) + value


def _payload(design: str, fingerprint: str) -> bytes:
    body = MARKER + design.encode("ascii") + b"\x00" + fingerprint.encode("ascii")
    body += b"\x00" * (-len(body) % 4)  # whole 32-bit configuration words
    return _SYNC + body


def simulated_bit(design: str, part: str, fingerprint: str) -> bytes:
    """A `.bit` file for the simulated board, deterministic for the same inputs."""
    data = _payload(design, fingerprint)
    return (struct.pack(">H", len(_HEADER)) + _HEADER + struct.pack(">H", 1)
            + _field(b"a", f"{design};UserID=0XFFFFFFFF;Version=vitfpga-board-sim")
            + _field(b"b", part) + _field(b"c", "2000/01/01") + _field(b"d", "00:00:00")
            + b"e" + struct.pack(">I", len(data)) + data)


def bin_fingerprint(bin_data: bytes) -> tuple[str, str] | None:
    """(design, fingerprint) of `.bin` data made from a simulated `.bit`; None for anything
    else (a real bitstream, garbage)."""
    if len(bin_data) % 4:
        return None
    # .bin words are the .bit words byte-swapped (pynq's bit2bin)
    words = struct.unpack(f"<{len(bin_data) // 4}I", bin_data)
    data = struct.pack(f">{len(words)}I", *words)
    if not data.startswith(_SYNC + MARKER):
        return None
    fields = data[len(_SYNC) + len(MARKER):].rstrip(b"\x00").split(b"\x00")
    if len(fields) != 2:
        return None
    try:
        return fields[0].decode("ascii"), fields[1].decode("ascii")
    except UnicodeDecodeError:
        return None
