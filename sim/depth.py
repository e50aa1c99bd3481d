"""Logic depth of the emitted Verilog in LUT levels, from the Yosys `synth_xilinx` netlist: timing
evidence without place-and-route (judged against `hls.plan.timing.level_budget`).

Yosys writes the flattened netlist as JSON (`write_json`); the longest register-to-register path
is found here, because Yosys' own `ltp -noff` does not know the Xilinx flip-flop primitives.

What a path is. It starts at a flip-flop (FD*, LD*), a block RAM or URAM, a registered DSP
output, a top-level input or a constant, and ends at any input of those (clock pins aside) or at
a top-level output. Levels along it (LEVELS):
- LUT1..LUT6, LUT6_2, INV: 1 each (a LUT6_2's O5 and O6 apart, each through the inputs its
  half of INIT depends on);
- MUXF7 / MUXF8 / MUXF9: 1 each (an in-slice mux, faster than a LUT: counting it 1 is the
  conservative choice);
- CARRY4 / CARRY8: 1 per carry cell, so a 32-bit add is 8 levels on xc7 and 4 on xcup (the
  chain is faster than that many LUTs, the LUT feeding it is counted on its own). Yosys maps
  carries to CARRY4 on every family; on xcup Vivado packs two chained CARRY4 into one CARRY8,
  so the upper one of each pair along a chain adds no level from its carry input;
- distributed RAM (RAM*) and shift registers (SRL*): the asynchronous read, address to output,
  1; their data, write-enable and clock-enable inputs end a path;
- a DSP48E1/E2 with PREG = 0 is combinational at its output: 3 levels (DSP_LEVELS), from the
  inputs whose own register is off (A, B, D only while MREG = 0 as well); with PREG = 1 it starts
  and ends paths like a flip-flop. Every combinational DSP is also counted in `comb_dsp`;
- I/O and clock buffers: 0.
A primitive this table does not know counts 1 level, from every input, and is listed in
`unknown`. A block RAM read without its output register (DOA_REG = 0) starts a path at 0 like
any other; its slower clock-to-out is left to the budget's margin.

What is reported: the levels of the deepest path, the path itself (start, each cell with the
user net it drives where Yosys kept one, end; I/O buffers left out; on xcup a CARRY4 is shown as
the CARRY8 holding it), and the deepest path ends, one line per register bus (`name[*]`, named
after the net the cell drives; `<-name` when only its input net has a name) with their levels.
"""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from vitfpga.errors import BadInput, VerificationFailed
from vitfpga.sim.synth import SYNTH_TIMEOUT_S, run_synth_xilinx

__all__ = ["DSP_LEVELS", "LEVELS", "DepthReport", "PathStep", "logic_depth", "netlist_depth"]

DSP_LEVELS = 3  # a DSP48 used without its P register: multiplier and post-adder in one clock
LEVELS: dict[str, int] = {
    **dict.fromkeys(("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2", "INV"), 1),
    **dict.fromkeys(("MUXF7", "MUXF8", "MUXF9"), 1),
    **dict.fromkeys(("CARRY4", "CARRY8"), 1),
    **dict.fromkeys(("IBUF", "OBUF", "OBUFT", "IOBUF", "IBUFG", "BUFG", "BUFGCE", "BUFH"), 0),
}
# Cells whose outputs start paths and whose inputs end them.
_BOUNDARY = re.compile(r"^(FD[A-Z]*|LD[A-Z]*|RAMB\d+E\d|FIFO\d+E\d|URAM288(_BASE)?|GND|VCC)$")
_LUTRAM = re.compile(r"^(RAM\d+X\d+[SD]|RAM\d+M\d*|SRL[A-Z]*\d+E)$")
_READ_ADDRESS = re.compile(r"^(A\d*|ADDR[A-H]|DPRA\d*)$")  # distributed RAM / SRL read address
_CLOCK_PINS = {"C", "CLK", "WCLK", "CLKARDCLK", "CLKBWRCLK", "CLKA", "CLKB", "RDCLK", "WRCLK"}
_DSP = {"DSP48E1", "DSP48E2"}
# DSP inputs -> the register that, when used, ends a path at that input.
_DSP_MULT_PINS = {"A": "AREG", "ACIN": "AREG", "B": "BREG", "BCIN": "BREG", "D": "DREG",
                  "INMODE": "INMODEREG"}
_DSP_ALU_PINS = {"C": "CREG", "PCIN": "", "CARRYIN": "CARRYINREG", "CARRYCASCIN": "",
                 "MULTSIGNIN": "", "OPMODE": "OPMODEREG", "ALUMODE": "ALUMODEREG",
                 "CARRYINSEL": "CARRYINSELREG"}
_SHOW_ENDPOINTS = 8
_ALIASES = 3
_NOT_SIGNALS = ("GND", "VCC", "OBUF", "OBUFT")
_NAME_CHARS = 60


@dataclass(frozen=True)
class PathStep:
    """One cell on a path: its type, its (shortened) name and the readable net it drives."""

    type: str
    cell: str
    net: str = ""


@dataclass(frozen=True)
class DepthReport:
    """The deepest path of one design. `path` runs from the start point through every
    combinational cell; `endpoints` are the deepest path ends, one per register or port."""

    top: str
    family: str
    levels: int
    start: str
    end: str
    path: tuple[PathStep, ...]
    endpoints: tuple[tuple[str, int], ...]
    comb_dsp: int = 0
    unknown: tuple[str, ...] = ()
    cells: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def route(self) -> str:
        """The path in one line: start, the cells (runs of one type without a readable net
        name folded into `TYPE xN`), end."""
        parts: list[str] = []
        run_type, run = "", 0
        for step in self.path:
            if not step.net and step.type == run_type:
                run += 1
                parts[-1] = f"{run_type} x{run}"
                continue
            parts.append(f"{step.type}({step.net})" if step.net else step.type)
            run_type, run = ("", 0) if step.net else (step.type, 1)
        return " -> ".join([self.start, *parts, self.end])

    def composition(self) -> str:
        """What the path's levels are made of, by kind: `3 LUT + 8 CARRY4`."""
        kinds = Counter("LUT" if s.type.startswith("LUT") or s.type == "INV" else s.type
                        for s in self.path)
        return " + ".join(f"{n} {kind}" for kind, n in kinds.most_common())

    def over(self, budget: int) -> list[tuple[str, int]]:
        """The listed endpoints deeper than `budget` levels."""
        return [(name, levels) for name, levels in self.endpoints if levels > budget]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def _bits_names(module: Mapping[str, object]) -> dict[int, str]:
    """A readable name per net bit: the user nets (not Yosys' own) holding it, shortest first,
    up to _ALIASES of them joined by `=` (a register is often also a shorter wire's part)."""
    labels: dict[int, list[str]] = {}
    for name, net in module.get("netnames", {}).items():  # type: ignore[union-attr]
        if int(net.get("hide_name", 0)) or name.startswith("$"):
            continue
        bits = net["bits"]
        offset = int(net.get("offset", 0))
        for i, bit in enumerate(bits):
            if isinstance(bit, int):
                labels.setdefault(bit, []).append(
                    name if len(bits) == 1 else f"{name}[{offset + i}]")
    return {bit: "=".join(sorted(names, key=lambda n: (len(n), n))[:_ALIASES])
            for bit, names in labels.items()}


def _short(name: str) -> str:
    name = name.lstrip("\\")
    return name if len(name) <= _NAME_CHARS else "..." + name[-(_NAME_CHARS - 3):]


def _param(cell: Mapping[str, object], key: str, default: int = 0) -> int:
    """An integer parameter: Yosys writes them as binary strings, or as plain integers."""
    value = cell.get("parameters", {}).get(key)  # type: ignore[union-attr]
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"[01xz]+", text):
        return int(text.replace("x", "0").replace("z", "0"), 2)
    return int(text) if text.lstrip("-").isdigit() else default


def _dsp_comb_pins(cell: Mapping[str, object]) -> set[str]:
    """The inputs of a DSP48 that reach P without a register (none when PREG = 1)."""
    if _param(cell, "PREG", 1):
        return set()
    mult_used = str(cell.get("parameters", {}).get("USE_MULT", "MULTIPLY")).strip() != "NONE"
    pins = {pin for pin, reg in _DSP_ALU_PINS.items() if not reg or not _param(cell, reg, 1)}
    # A product passes the M register when there is one; A:B used as one operand does not.
    if not (mult_used and _param(cell, "MREG", 1)):
        pins |= {pin for pin, reg in _DSP_MULT_PINS.items() if not _param(cell, reg, 1)}
    return pins


def _cell_kind(cell: Mapping[str, object]) -> tuple[set[str], int, bool]:
    """(inputs that pass combinationally to the outputs, levels, known type)."""
    ctype = str(cell["type"]).lstrip("\\")
    inputs = {p for p, d in cell.get("port_directions", {}).items() if d == "input"}
    if ctype in LEVELS:
        return inputs, LEVELS[ctype], True
    if _BOUNDARY.match(ctype):
        return set(), 0, True
    if _LUTRAM.match(ctype):
        return {p for p in inputs if _READ_ADDRESS.match(p)}, 1, True
    if ctype in _DSP:
        pins = _dsp_comb_pins(cell)
        return pins, (DSP_LEVELS if pins or not _param(cell, "PREG", 1) else 0), True
    return inputs - _CLOCK_PINS, 1, False


@dataclass
class _Graph:
    """The netlist as the pass needs it: each bit's driver, each cell's combinational inputs."""

    cells: dict[str, Mapping[str, object]]
    driver: dict[int, str]  # bit -> driving cell (absent: a port, a constant)
    # cell -> ((input bit, levels it adds), levels from the cell's own state or constants)
    comb: dict[str, tuple[list[tuple[int, int]], int]]
    names: dict[int, str]
    unknown: set[str]
    comb_dsp: int
    family: str = ""


def _carry8_second_halves(cells: Mapping[str, Mapping[str, object]],
                          driver: Mapping[int, str]) -> set[str]:
    """The CARRY4 cells that an UltraScale+ CARRY8 absorbs as its upper half: every second one
    along a chain (CI fed by the previous one's CO). Yosys maps carries to CARRY4 on every
    family; Vivado packs a chained pair into one CARRY8."""
    def previous(name: str) -> str | None:
        ci = [b for b in cells[name]["connections"].get("CI", []) if isinstance(b, int)]
        src = driver.get(ci[0]) if ci else None
        return src if src is not None and cells[src]["type"] == "CARRY4" else None

    position: dict[str, int] = {}
    for name, cell in cells.items():
        if cell["type"] != "CARRY4" or name in position:
            continue
        chain = [name]
        while (prev := previous(chain[-1])) is not None and prev not in position \
                and prev not in chain:
            chain.append(prev)
        at = position.get(prev, -1) if prev is not None else -1
        for cell_name in reversed(chain):
            at += 1
            position[cell_name] = at
    return {n for n, at in position.items() if at % 2}


def _lut_inputs(init: int, size: int) -> set[str]:
    """The pins `I0..` a LUT function of `size` inputs (its truth table `init`) depends on."""
    return {f"I{j}" for j in range(size.bit_length() - 1)
            if any((init >> n ^ init >> (n ^ 1 << j)) & 1 for n in range(size))}


def _split_lut6_2(cells: dict[str, Mapping[str, object]]) -> dict[str, Mapping[str, object]]:
    """A LUT6_2 as two cells, O6 (INIT over I0-I5) and O5 (its lower half over I0-I4), each with
    only the inputs its function depends on: a ternary adder's O5 (a bit's majority) feeds the
    next bit's LUT but does not depend on the previous bit's, so no chain runs through them."""
    out: dict[str, Mapping[str, object]] = {}
    for name, cell in cells.items():
        if str(cell["type"]) != "LUT6_2":
            out[name] = cell
            continue
        init = _param(cell, "INIT")
        conns = cell["connections"]  # type: ignore[index]
        for pin, part, size in (("O6", name, 64), ("O5", f"{name}.O5", 32)):
            pins = _lut_inputs(init & ((1 << size) - 1), size)
            out[part] = {**cell, "connections": {p: conns[p] for p in (*sorted(pins), pin)},
                         "port_directions": {**dict.fromkeys(pins, "input"), pin: "output"}}
    return out


def _graph(module: Mapping[str, object], family: str) -> _Graph:
    cells: dict[str, Mapping[str, object]] = _split_lut6_2({
        n: c for n, c in module.get("cells", {}).items()  # type: ignore[union-attr]
        if str(c["type"]) != "$scopeinfo"})
    driver: dict[int, str] = {}
    for name, cell in cells.items():
        directions = cell.get("port_directions")
        if not directions:
            raise VerificationFailed(f"netlist cell {name} ({cell['type']}) has no port "
                                     f"directions: a blackbox the depth pass cannot read")
        for pin, bits in cell["connections"].items():
            if directions.get(pin) == "output":
                driver.update((b, name) for b in bits if isinstance(b, int))
    halves = _carry8_second_halves(cells, driver) if family == "xcup" else set()
    comb: dict[str, tuple[list[tuple[int, int]], int]] = {}
    unknown: set[str] = set()
    comb_dsp = 0
    for name, cell in cells.items():
        pins, levels, known = _cell_kind(cell)
        if not known:
            unknown.add(str(cell["type"]))
        if pins or levels:
            # The carry entering a CARRY8's upper half adds nothing: it is the same cell.
            comb[name] = ([(b, 0 if name in halves and p == "CI" else levels)
                           for p in sorted(pins) for b in cell["connections"].get(p, [])
                           if isinstance(b, int)], levels)
            comb_dsp += str(cell["type"]) in _DSP
    names = _bits_names(module)
    # An I/O buffer's two nets are one signal: a register driving an output port is named
    # after the port.
    for cell in cells.values():
        if LEVELS.get(str(cell["type"])) == 0:
            ends = [b for pin in ("I", "O") for b in cell["connections"].get(pin, [])[:1]]
            if len(ends) == 2 and all(isinstance(b, int) for b in ends) and ends[1] in names:
                names.setdefault(ends[0], names[ends[1]])
    return _Graph(cells, driver, comb, names, unknown, comb_dsp, family)


def _arrivals(g: _Graph) -> tuple[dict[str, int], dict[str, int]]:
    """Levels at each combinational cell's outputs and the input bit that sets them (-1: the
    cell's own state), in topological order (Kahn); a combinational loop is an error."""
    users: dict[str, list[str]] = {n: [] for n in g.comb}
    pending = dict.fromkeys(g.comb, 0)
    for name, (inputs, _) in g.comb.items():
        for src in {g.driver.get(b) for b, _ in inputs}:
            if src in g.comb:
                users[src].append(name)
                pending[name] += 1
    ready = deque(n for n, k in pending.items() if k == 0)
    arrival: dict[str, int] = {}
    via: dict[str, int] = {}
    while ready:
        name = ready.popleft()
        inputs, best = g.comb[name]
        best_bit = -1
        for b, levels in inputs:
            at = arrival.get(g.driver.get(b, ""), 0) + levels
            # Ties go to an input, so that the path is traced back to where it starts.
            if at > best or (at == best and best_bit < 0):
                best, best_bit = at, b
        arrival[name], via[name] = best, best_bit
        for user in users[name]:
            pending[user] -= 1
            if pending[user] == 0:
                ready.append(user)
    if len(arrival) < len(g.comb):
        stuck = sorted(n for n in g.comb if n not in arrival)[:5]
        raise VerificationFailed(f"combinational loop through {len(g.comb) - len(arrival)} "
                                 f"cells, among them {', '.join(map(_short, stuck))}")
    return arrival, via


def _port_bits(module: Mapping[str, object], directions: tuple[str, ...]) -> dict[int, str]:
    """Bit -> `name[i]` of the top's ports in `directions`."""
    out: dict[int, str] = {}
    for port, spec in module.get("ports", {}).items():  # type: ignore[union-attr]
        if spec["direction"] in directions:
            bits = spec["bits"]
            out.update((b, port if len(bits) == 1 else f"{port}[{i}]")
                       for i, b in enumerate(bits) if isinstance(b, int))
    return out


def _endpoints(g: _Graph, module: Mapping[str, object]) -> list[tuple[int, str]]:
    """(bit, name) of every path end: the inputs of registers and memories, named after the net
    the cell drives (else `<-` the net into that input, else Yosys' cell name), then
    `(TYPE.PIN)`; and the output ports."""
    ends: list[tuple[int, str]] = []
    for name, cell in g.cells.items():
        # By pin, not by bit: a LUTRAM's read address may also be its write data.
        through = _cell_kind(cell)[0] if name in g.comb else set()
        directions = cell["port_directions"]
        outputs = [b for p, bits in cell["connections"].items()
                   if directions.get(p) == "output" for b in bits]
        label = next((g.names[b] for b in outputs if b in g.names), "")
        ctype = str(cell["type"]).lstrip("\\")
        # A DSP48's C is its third operand (a flip-flop's C is its clock).
        clocks = _CLOCK_PINS - {"C"} if ctype in _DSP else _CLOCK_PINS
        for pin, bits in cell["connections"].items():
            if directions.get(pin) != "input" or pin in clocks | through:
                continue
            ends += [(b, f"{_short(label or _input_name(g, b) or name)} ({ctype}.{pin})")
                     for b in bits if isinstance(b, int)]
    ends += [(b, f"port {n}") for b, n in _port_bits(module, ("output", "inout")).items()]
    return ends


def _input_name(g: _Graph, bit: int) -> str:
    """`<-name` of the net into an input; "" for none or a constant (GND/VCC, or an output
    port Yosys ties a constant to)."""
    if bit not in g.names or g.cells.get(g.driver.get(bit, ""), {}).get("type") in _NOT_SIGNALS:
        return ""
    return f"<-{g.names[bit]}"


def _start(g: _Graph, bit: int, inputs: Mapping[int, str], origin: str) -> str:
    if bit < 0:
        # A DSP whose own input registers feed P unregistered: named by what they hold.
        cell = g.cells[origin]
        held = [f"{pin}<-{g.names[bits[0]]}" for pin, bits in sorted(cell["connections"].items())
                if pin in ("A", "B", "C", "D") and bits and bits[0] in g.names]
        return f"internal register of {str(cell['type']).lstrip(chr(92))}" + (
            f" ({', '.join(_short(h) for h in held)})" if held else "")
    src = g.driver.get(bit)
    if src is None:
        return f"port {inputs[bit]}" if bit in inputs else "constant"
    ctype = str(g.cells[src]["type"]).lstrip("\\")
    return f"{_short(g.names.get(bit, src))} ({ctype})"


def _ranked(ends: list[tuple[int, str]], level: Mapping[int, int]) -> tuple[tuple[str, int], ...]:
    """The deepest path ends, the bits of one bus folded into `name[*]`."""
    per_end: dict[str, int] = {}
    for bit, name in ends:
        # Buses, generate loops and the FF flavours (FDRE, FDSE: reset value) folded; aliases
        # sorted again, as folding the indices can change their order.
        key = re.sub(r"\(FD[RSCP]E\.", "(FF.", re.sub(r"\[\d+\]", "[*]", name))
        signal, _, pin = key.partition(" (")
        key = "=".join(sorted(set(signal.split("=")), key=lambda n: (len(n), n))) + (
            f" ({pin}" if pin else "")
        per_end[key] = max(per_end.get(key, 0), level.get(bit, 0))
    return tuple(sorted(per_end.items(), key=lambda kv: (-kv[1], kv[0]))[:_SHOW_ENDPOINTS])


def _trace(g: _Graph, arrival: Mapping[str, int], via: Mapping[str, int],
           bit: int) -> tuple[tuple[PathStep, ...], int, str]:
    """The cells of the path ending at `bit`, first to last, and the bit it starts from. I/O
    buffers are left out; on xcup a CARRY4 is shown as the CARRY8 that holds it, and the upper
    half of a pair (which adds no level) is left out."""
    path: list[PathStep] = []
    cell = ""
    while g.driver.get(bit) in arrival:
        cell, bit_out = g.driver[bit], bit
        bit = via[cell]
        ctype = str(g.cells[cell]["type"]).lstrip("\\")
        if g.comb[cell][1] == 0:  # an I/O or clock buffer: no level, no news on the path
            continue
        src = g.driver.get(bit, "")
        if ctype == "CARRY4" and g.family == "xcup":
            if src in arrival and arrival[src] == arrival[cell] \
                    and g.cells[src]["type"] == "CARRY4":
                continue
            ctype = "CARRY8"
        path.append(PathStep(ctype, _short(cell), _short(g.names.get(bit_out, ""))))
    return tuple(reversed(path)), bit, cell


def _top_module(netlist: Mapping[str, object], top: str) -> Mapping[str, object]:
    """Module `top`; Yosys may name a top whose parameters were set `$paramod\\top\\P=...`,
    so a module marked top that derives from it is taken too."""
    modules: Mapping[str, Mapping[str, object]] = netlist.get("modules", {})  # type: ignore
    for name in (top, f"\\{top}"):
        if name in modules:
            return modules[name]
    derived = [m for name, m in modules.items()
               if name.startswith(f"$paramod\\{top}\\")
               and int(str(m.get("attributes", {}).get("top", "0")), 2)]  # type: ignore
    if len(derived) != 1:
        raise VerificationFailed(f"module {top} missing from the netlist")
    return derived[0]


def netlist_depth(netlist: Mapping[str, object], top: str, family: str = "") -> DepthReport:
    """The deepest path of module `top` in a Yosys JSON netlist (`write_json`)."""
    module = _top_module(netlist, top)
    g = _graph(module, family)
    arrival, via = _arrivals(g)
    level = {b: arrival[d] for b, d in g.driver.items() if d in arrival}
    ends = _endpoints(g, module)
    if not ends:
        raise VerificationFailed(f"{top}: no path ends (no registers, no outputs)")
    worst_bit, worst_end = max(ends, key=lambda e: level.get(e[0], 0))
    path, bit, origin = _trace(g, arrival, via, worst_bit)
    cells = Counter(str(c["type"]).lstrip("\\") for c in g.cells.values())
    return DepthReport(top=top, family=family, levels=level.get(worst_bit, 0),
                       start=_start(g, bit, _port_bits(module, ("input", "inout")), origin),
                       end=worst_end, path=path,
                       endpoints=_ranked(ends, level), comb_dsp=g.comb_dsp,
                       unknown=tuple(sorted(g.unknown)), cells=dict(sorted(cells.items())))


def logic_depth(sources: Sequence[Path], top: str, family: str, build_dir: Path, *,
                params: Mapping[str, int | str] | None = None,
                mem_files: Sequence[Path] = (),
                timeout: float = SYNTH_TIMEOUT_S) -> DepthReport:
    """Synthesise `sources` (`synth_xilinx -family <family> -flatten`, `params` on the top,
    `mem_files` copied beside them for `$readmemh`) and measure the deepest path. The netlist
    (netlist.json), log and the report (depth_report.json) land in `build_dir`."""
    if not sources:
        raise BadInput("logic_depth needs at least one Verilog source")
    build_dir = Path(build_dir)
    _, seconds = run_synth_xilinx([*sources, *mem_files], build_dir, top=top, family=family,
                                  params=params, netlist="netlist.json", timeout=timeout)
    try:
        netlist = json.loads((build_dir / "netlist.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise VerificationFailed(f"yosys: unreadable netlist in {build_dir}: {e}") from e
    report = netlist_depth(netlist, top, family)
    report = replace(report, seconds=round(seconds, 2))
    (build_dir / "depth_report.json").write_text(report.to_json())
    return report
