"""Run by tests/hls/test_hwh.py under `.venv-pynq/bin/python` (the real pynq 4.0 client, which
cannot share the main venv): parse `<design>.bit` + `.hwh` the way PYNQ.remote's client does
(`RemoteBitstreamHandler.get_parser`: pynqmetadata's Metadata + RuntimeMetadataParser, then the
default xclbin's memories), bind drivers as `Overlay` does, and print what PYNQ saw as JSON.

usage: python pynq_hwh_probe.py DESIGN.bit
Imports nothing of vitfpga: this venv does not have it.
"""

from __future__ import annotations

import json
import sys
import warnings


def _links(md: object) -> dict[str, list[str]]:
    """Every bus port of every block and the ports its signals reach ("cell/port")."""
    out: dict[str, list[str]] = {}
    for block in md.blocks.values():  # type: ignore[attr-defined]
        for port in block.ports.values():
            if not hasattr(port, "destinations"):
                continue
            dests = [f"{d.parent().name}/{d.name}" for d in port.destinations().values()]
            if dests:
                out[f"{block.name}/{port.name}"] = sorted(dests)
    return out


def _addrmaps(md: object) -> dict[str, list[list[object]]]:
    """What each manager port of each block reaches: [block, baseaddr, range] per region."""
    out: dict[str, list[list[object]]] = {}
    for block in md.blocks.values():  # type: ignore[attr-defined]
        for port in block.ports.values():
            for entry in getattr(port, "addrmap", {}).values():
                out.setdefault(f"{block.name}/{port.name}", []).append(
                    [entry["block"], entry.get("baseaddr"), entry.get("addr_range")])
    return out


def main(bit: str) -> None:
    # Importing pynq on a PC warns about the CPU architecture: only what parsing and driver
    # binding say counts.
    import pynq.lib.axigpio  # registers the driver by its bindto
    import pynq.lib.dma  # noqa: F401
    from pynq.overlay import _assign_drivers
    from pynq.pl_server.remote_device import RemoteBitstreamHandler

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parser = RemoteBitstreamHandler(bit).get_parser()
        description = {"ip": {k: dict(v) for k, v in parser.ip_dict.items()}, "hierarchies": {}}
        _assign_drivers(description, ignore_version=False, device=None)
    ip = {}
    for name, d in description["ip"].items():
        driver = d.get("driver")
        ip[name] = {"phys_addr": d.get("phys_addr"), "addr_range": d.get("addr_range"),
                    "type": d["type"], "mem_id": d.get("mem_id"),
                    "parameters": d["parameters"], "registers": sorted(d.get("registers", {})),
                    "driver": f"{driver.__module__}.{driver.__qualname__}" if driver else None}
    mem = {k: {"phys_addr": v.get("phys_addr"), "addr_range": v.get("addr_range")}
           for k, v in parser.mem_dict.items()}
    print(json.dumps({
        "ps_name": parser.ps_name, "family_ps": parser.family_ps, "ip": ip,
        "clock": {str(k): v for k, v in parser.clock_dict.items()}, "mem": mem,
        "gpio": sorted(parser.gpio_dict), "interrupts": sorted(parser.interrupt_pins),
        "links": _links(parser.md), "addrmaps": _addrmaps(parser.md),
        "warnings": sorted({str(w.message) for w in caught
                            if not issubclass(w.category, DeprecationWarning)}),
    }, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
