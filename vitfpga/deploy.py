"""`vitfpga deploy`: one archive with everything that goes on the board (design.md §7).

    <design>.tar.gz
      <design>/MANIFEST.json    design, board, bitstream status, every file's SHA-256 and size
      <design>/SHA256SUMS       the same checksums for `sha256sum -c` on the board
      <design>/setup.py         the driver package (pynq/ of the project), pip-installable with
                                any setuptools a PYNQ image has (44 on PYNQ 2.7)
      <design>/run_on_board.py, test_images.npz
      <design>/<design>/...     driver, hw.json, integer model, runtime,
                                overlay/<design>.bit|.hwh (and .xsa, when built)

The bitstream is taken from the driver's overlay/ (where `make bitstream` copies it) or from
vivado/output/, with the hardware platform `<design>.xsa` beside it when there is one (PYNQ 4's
remote Overlay loads it; older builds have none); without a bitstream the archive says where it
belongs. The archive is deterministic
(sorted members, fixed times and owners) and its directory appears whole or not at all.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from vitfpga import __version__
from vitfpga.errors import BadInput
from vitfpga.hls.emit.project import SYSTEM_FILE
from vitfpga.outdir import atomic_output_dir

__all__ = ["MANIFEST", "Bundle", "bundle_project", "find_project"]

MANIFEST = "MANIFEST.json"
SUMS = "SHA256SUMS"


@dataclass(frozen=True)
class Bundle:
    archive: Path
    manifest: dict[str, object]


def find_project(path: Path) -> Path:
    """A generated project directory, given it or the run directory that holds it."""
    for candidate in (path, path / "project"):
        if (candidate / SYSTEM_FILE).is_file():
            return candidate
    raise BadInput(f"{path} is not a vitfpga project (no {SYSTEM_FILE}); make one with "
                   f"`vitfpga generate RUN_DIR --board NAME --out DIR`")


def _read_system(project: Path) -> dict[str, object]:
    try:
        system = json.loads((project / SYSTEM_FILE).read_text())
        design = str(system["design"])
    except (ValueError, KeyError, TypeError) as e:
        raise BadInput(f"{project / SYSTEM_FILE}: corrupt ({type(e).__name__}: {e}); "
                       f"regenerate the project") from None
    package = project / "pynq" / design
    for need in ("driver.py", "hw.json", "model.npz"):
        if not (package / need).is_file():
            raise BadInput(f"{project}: the driver package lacks {need}; regenerate the project")
    return system


def _bitstream(project: Path, design: str) -> dict[str, Path]:
    """`<design>.bit` and `.hwh`, and `.xsa` when it is beside them, by their archive names:
    from overlay/, else vivado/output/."""
    for folder in (project / "pynq" / design / "overlay", project / "vivado" / "output"):
        files = {ext: folder / f"{design}.{ext}" for ext in ("bit", "hwh")}
        if all(f.is_file() for f in files.values()):
            if (folder / f"{design}.xsa").is_file():
                files["xsa"] = folder / f"{design}.xsa"
            return {f"{design}/overlay/{design}.{ext}": f for ext, f in files.items()}
    return {}


def _members(project: Path, design: str) -> dict[str, bytes]:
    pynq = project / "pynq"
    members = {f.relative_to(pynq).as_posix(): f.read_bytes()
               for f in sorted(pynq.rglob("*")) if f.is_file() and "__pycache__" not in f.parts}
    members |= {name: f.read_bytes() for name, f in _bitstream(project, design).items()}
    return members


def _tar(members: dict[str, bytes], root: str) -> bytes:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mtime, info.mode = len(members[name]), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(members[name]))
    return raw.getvalue()


def bundle_project(path: Path, out: Path, force: bool, require_bitstream: bool = False
                   ) -> Bundle:
    """Write `out/<design>.tar.gz` and a copy of its manifest, atomically."""
    project = find_project(path)
    system = _read_system(project)
    design = str(system["design"])
    members = _members(project, design)
    bit_name = f"{design}/overlay/{design}.bit"
    xsa_name = f"{design}/overlay/{design}.xsa"
    if require_bitstream and bit_name not in members:
        raise BadInput(f"{project} has no bitstream yet: run `make -C {project} bitstream` "
                       f"on a machine with Vivado, or leave out --require-bitstream")
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    manifest: dict[str, object] = {
        "design": design, "board": system.get("board"), "part": system.get("part"),
        "clock_mhz": system.get("clock_mhz"), "vitfpga": __version__,
        "bitstream": {"path": bit_name, "present": bit_name in members,
                      "build": "make bitstream (Vivado), in the project directory"},
        "platform": {"path": xsa_name, "present": xsa_name in members},
        "files": {name: {"sha256": digests[name], "bytes": len(members[name])}
                  for name in sorted(members)},
    }
    text = json.dumps(manifest, indent=2) + "\n"
    sums = "".join(f"{digests[name]}  {name}\n" for name in sorted(members))
    archive = _tar(members | {MANIFEST: text.encode(), SUMS: sums.encode()}, design)
    with atomic_output_dir(out, force) as tmp:
        (tmp / f"{design}.tar.gz").write_bytes(archive)
        (tmp / MANIFEST).write_text(text)
    return Bundle(archive=out / f"{design}.tar.gz", manifest=manifest)
