"""`vitfpga_mvu` with a streamed operand (docs/engine.md, "Streamed operand"): attention's Q.K^T
(raw int32 out) and A.V (requantised int8 out) on the matmul engine, the "weight" operand written
at run time into the operand buffer, mixed with a normal weight-ROM layer in one program.

One Verilator build per PE x SIMD shape plays a seeded program of runs back to back, rewriting
the operand buffer between runs and during them (into the half the running entry does not read,
as the top double-buffers by w_base), with byte-lane enables and junk in every lane a write does
not enable. Every output value is compared exactly with the integer golden model. Besides the
small digits-ViT shapes (two of them with packed pairs of PEs, PACK), the DeiT-Tiny attention
shapes (T = 197 tokens, hd = 64) at a DeiT-Tiny on KV260 candidate folding: NF = ceil(197/PE)
folds for Q.K^T and SF = ceil(197/SIMD) for A.V, both with padded lanes in the last fold. Plus
lint (Verilator -Wall) and an Icarus compile with and without the operand buffer.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from vitfpga.hls.plan.engine import engine_latency
from vitfpga.hls.plan.layout import PROGRAM_BITS, channel_words, pack_fields, weight_words
from vitfpga.quant.codecs import pack_lanes
from vitfpga.runtime.intmath import requantize
from vitfpga.runtime.model import IntLinear, linear_golden
from vitfpga.sim.models import XILINX_PRIMS
from vitfpga.sim.tools import tool_env
from vitfpga.sim.unit import INCLUDE_DIR, run_unit

SOURCES = [INCLUDE_DIR / name for name in ("vitfpga_mvu.v", "vitfpga_addtree.v",
                                           "vitfpga_lutmul.v", "vitfpga_mulpack.v",
                                           "vitfpga_lane_ram.v",
                                           "vitfpga_requant.v")] + \
    sorted(INCLUDE_DIR.glob("vitfpga_wdec*.v")) + [XILINX_PRIMS]
WBITS = 4
RELU, STREAM, RAW = 1, 2, 4  # program entry byte [103:96]
# Decoder fields of the entries: the ROM layer is dense intWBITS, an operand int8 lanes.
ROM_CODEC = {"codec": 0, "ebits": WBITS, "wbits": WBITS}
OPERAND_CODEC = {"codec": 0, "ebits": 8, "wbits": 8}
MEM_FILES = {"WEIGHT_FILE": "weights.mem", "BIAS_FILE": "bias.mem", "MULT_FILE": "mult.mem",
             "SHIFT_FILE": "shift.mem", "PROGRAM_FILE": "program.mem"}


@dataclass
class Entry:
    """One program entry and what the test knows about it."""

    kind: str  # "rom", "qk" or "av"
    n: int
    k: int
    flags: int
    w_base: int = 0
    c_base: int = 0
    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))  # (N, K)
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    mult: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shift: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def folds(self, pe: int, simd: int) -> tuple[int, int]:
        """(output beats of PE lanes, input folds)."""
        return math.ceil(self.n / pe), math.ceil(self.k / simd)

    def weight_folds(self, pe: int, groups: int) -> int:
        """Folds along N of the array: PE x groups rows for the ROM layer, PE for an operand."""
        return math.ceil(self.n / (pe * (groups if self.kind == "rom" else 1)))


def _mem(path: Path, words: list[int], bits: int, depth: int) -> None:
    digits = (bits + 3) // 4
    words = words + [0] * (depth - len(words))
    path.write_text("".join(f"{w:0{digits}x}\n" for w in words))


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def _lanes(word: int, bits: int, lanes: int) -> list[int]:
    mask = (1 << bits) - 1
    return [_signed(word >> (i * bits) & mask, bits) for i in range(lanes)]


def _shift_for(acc: np.ndarray, mult: int, target: int = 160) -> int:
    """A shift that brings the largest |acc|*M to about `target`, so outputs spread over int8
    and some clamp."""
    peak = max(1, int(np.abs(acc).max())) * mult
    return int(min(62, max(1, math.ceil(math.log2(peak / target)))))


def _operand_writes(entry: Entry, pe: int, simd: int,
                    rng: np.random.Generator) -> list[list[int]]:
    """Operand-buffer writes that leave entry.weight in the entry's words: first junk in every
    lane, then the real lanes in two byte-enabled passes whose disabled lanes carry other junk
    (so a write that ignored opw_be would be caught). Lanes past N/K keep the first junk."""
    nf, sf = entry.folds(pe, simd)
    full = rng.integers(-128, 128, size=(nf * pe, sf * simd))
    full[:entry.n, :entry.k] = entry.weight
    real = np.zeros_like(full, dtype=bool)
    real[:entry.n, :entry.k] = True
    lanes = pe * simd
    writes: list[list[int]] = []
    tiles = [(i, f * pe, s * simd) for i, (f, s) in
             enumerate((f, s) for f in range(nf) for s in range(sf))]

    def tile(a: np.ndarray, r: int, c: int) -> np.ndarray:
        return a[r:r + pe, c:c + simd].reshape(-1)

    for i, _, _ in tiles:  # junk everywhere, every lane enabled
        junk = rng.integers(-128, 128, size=lanes).tolist()
        writes.append([entry.w_base + i, (1 << lanes) - 1, pack_lanes(junk, 8)])
    split = rng.integers(0, 2, size=(len(tiles), lanes)).astype(bool)  # which pass a lane is in
    for second in (False, True):
        for j in rng.permutation(len(tiles)):
            i, r, c = tiles[j]
            enable = tile(real, r, c) & (~split[j] if second else split[j])
            data = np.where(enable, tile(full, r, c), rng.integers(-128, 128, size=lanes))
            be = sum(1 << lane for lane in range(lanes) if enable[lane])
            writes.append([entry.w_base + i, be, pack_lanes(data.tolist(), 8)])
    return writes


class Case(NamedTuple):
    """One Verilator build (one PE x SIMD) and the program it plays."""

    pe: int
    simd: int
    seed: int
    tokens: list[int | None]  # T per head; None: drawn from the seed
    heads: list[int]  # hd per head (played in a seeded order)
    stall: bool  # random input stalls, output backpressure and gaps between operand writes
    rom: tuple[int, int] | None = None  # (K, N) of the ROM layer; None: small, drawn
    # True: every streamed run's operand is written during the run before it, as a streaming
    # top prefetches; False: a seeded mix of during and between runs.
    overlap: bool = False
    pack: int = 0  # the engine's PACK: two products a DSP at this operand shift (0: one)
    groups: int = 1  # the engine's PG: the ROM layer's folds of PE x groups rows
    # The engine's PAIR: the ROM layer's rows two a weight word, its weights int2 in [-1, 1]
    # and its bias table less 128 * sum_k w (vitfpga_mulpack.v vitfpga_mul2x2)
    pair: bool = False

    @property
    def wbits(self) -> int:
        return 2 if self.pair else WBITS


# One head's operands: (Q.K^T entry, A.V entry, Q, probabilities, V).
Head = tuple[Entry, Entry, np.ndarray, np.ndarray, np.ndarray]


def _rom_entry(c: Case, rng: np.random.Generator) -> Entry:
    """The ROM layer: int4 weights, per-channel bias/M/S, shifts around a typical accumulator
    so outputs spread over int8 and some clamp."""
    k_rom, n_rom = c.rom or (int(rng.integers(20, 65)), int(rng.integers(8, 41)))
    rom = Entry("rom", n_rom, k_rom, RELU * int(rng.integers(0, 2)))
    rom.weight = (rng.integers(-1, 2, size=(n_rom, k_rom)) if c.pair
                  else rng.integers(-8, 8, size=(n_rom, k_rom)))
    rom.bias = rng.integers(-4000, 4000, size=n_rom)
    rom.mult = rng.integers(2**30, 2**31, size=n_rom)
    typical = np.abs(rng.integers(-128, 128, size=(8, k_rom)) @ rom.weight.T).max()
    rom.shift = _shift_for(np.array([typical]), 2**30) + rng.integers(-1, 2, size=n_rom)
    return rom


def _head(t: int, hd: int, rng: np.random.Generator) -> Head:
    """One attention head of T tokens and head dim hd: its Q.K^T and A.V entries and data."""
    q = rng.integers(-128, 128, size=(t, hd))
    kmat = rng.integers(-128, 128, size=(t, hd))
    v = rng.integers(-128, 128, size=(t, hd))
    prob = rng.integers(0, 128, size=(t, t))
    qk = Entry("qk", t, hd, STREAM | RAW, weight=kmat)  # W = K: N = T, K = hd
    # Raw: bias 0 (Q.K^T has none), M/S junk that a raw run must not use.
    qk.bias = np.zeros(t, np.int64)
    qk.mult = rng.integers(0, 2**31, size=t)
    qk.shift = rng.integers(0, 128, size=t)
    av = Entry("av", hd, t, STREAM, weight=v.T)  # W[n][k] = V[k][n]: N = hd, K = T
    m = int(rng.integers(2**30, 2**31))
    av.bias = np.zeros(hd, np.int64)
    av.mult = np.full(hd, m)
    av.shift = np.full(hd, _shift_for(prob @ v, m))
    return qk, av, q, prob, v


def _write_memories(entries: list[Entry], c: Case, files: Path) -> dict[str, int | str]:
    """Place the entries (table and operand bases), write the DUT's memory files and return
    its parameters: ROM words, per-channel tables, the operand buffer's two halves."""
    pe, simd, groups, wbits = c.pe, c.simd, c.groups, c.wbits
    rom = entries[0]
    c_base = 0
    for e in entries:
        e.c_base = c_base
        c_base += e.folds(pe, simd)[0]
    stream_words = [math.prod(e.folds(pe, simd)) for e in entries[1:]]
    half = max(stream_words)
    # Q.K^T operands in one half, A.V in the other; odd bases and an odd depth on purpose.
    for e in entries[1:]:
        e.w_base = 1 if e.kind == "qk" else half + 2
    opdepth = 2 * half + 3
    rom_words = weight_words(_rom_layer(rom, wbits), pe * groups, simd, wbits)
    tables: dict[str, list[int]] = {"bias": [], "mult": [], "shift": []}
    for e in entries:
        bias = e.bias - 128 * e.weight.sum(axis=1) if c.pair and e.kind == "rom" else e.bias
        tables["bias"] += channel_words(bias, pe, 32, 0)
        tables["mult"] += channel_words(e.mult, pe, 32, 2**30)
        tables["shift"] += channel_words(e.shift, pe, 8, 1)
    program = []
    for e in entries:
        beats, sf = e.folds(pe, simd)
        folds = e.weight_folds(pe, groups)
        last = beats - (folds - 1) * groups if e.kind == "rom" else 1  # a row's last fold
        program.append(pack_fields({"w_base": e.w_base, "c_base": e.c_base, "sf": sf,
                                    "nf": folds, "relu": e.flags | (last - 1) << 4,
                                    **({"codec": 0, "ebits": wbits, "wbits": wbits}
                                       if e.kind == "rom" else OPERAND_CODEC)}))
    depth = len(rom_words)
    _mem(files / MEM_FILES["WEIGHT_FILE"], rom_words, pe * groups * simd * wbits, depth)
    _mem(files / MEM_FILES["BIAS_FILE"], tables["bias"], pe * 32, c_base)
    _mem(files / MEM_FILES["MULT_FILE"], tables["mult"], pe * 32, c_base)
    _mem(files / MEM_FILES["SHIFT_FILE"], tables["shift"], pe * 8, c_base)
    _mem(files / MEM_FILES["PROGRAM_FILE"], program, PROGRAM_BITS, len(program))
    return {
        "PE": pe, "SIMD": simd, "WBITS": wbits, "LANE_BITS": wbits, "OFFSET_STEP": wbits,
        "WMASK": 1 << wbits, "NLAYERS": len(entries), "ROM_DEPTH": depth,
        "RAM_DEPTH": 0, "CDEPTH": c_base, "MAXBEATS": max(e.folds(pe, simd)[1] for e in entries),
        "OPDEPTH": opdepth, "PG": groups, "PAIR": int(c.pair),
        # String parameters reach Verilator's -G quoted.
        **{param: f'"{files / name}"' for param, name in MEM_FILES.items()}}


def _run_order(heads: list[Head], k_rom: int, rng: np.random.Generator
               ) -> list[tuple[int, np.ndarray]]:
    """(entry index, input rows) per run: the ROM layer, the first half of the heads, the ROM
    layer again, the other heads; each head is Q.K^T then A.V."""
    order: list[tuple[int, np.ndarray]] = []
    for j, (_qk, _av, q, prob, _v) in enumerate(heads):
        if j == len(heads) // 2 or j == 0:
            order.append((0, rng.integers(-128, 128, size=(int(rng.integers(1, 7)), k_rom))))
        order += [(1 + 2 * j, q), (2 + 2 * j, prob)]
    return order


def _run(idx: int, x: np.ndarray, e: Entry, pe: int, simd: int, stall: bool) -> dict[str, Any]:
    """The bench's description of one run: its input beats (K zero-padded to whole SIMD
    beats), output beats and stall rates; the operand writes are filled in later."""
    nf, sf = e.folds(pe, simd)
    xp = np.zeros((x.shape[0], sf * simd), np.int64)
    xp[:, :x.shape[1]] = x
    beats = [pack_lanes(xp[r, s * simd:(s + 1) * simd].tolist(), 8)
             for r in range(x.shape[0]) for s in range(sf)]
    return {"layer": idx, "rows": x.shape[0], "beats": beats, "out_beats": x.shape[0] * nf,
            "writes_before": [], "writes_during": [],
            "stall_in": 0.3 if stall else 0.0, "stall_out": 0.3 if stall else 0.0,
            "write_gap": 0.3 if stall else 0.0}


def _rom_layer(e: Entry, wbits: int = WBITS) -> IntLinear:
    return IntLinear(name="rom", weight=e.weight, bias=e.bias, multiplier=e.mult, shift=e.shift,
                     relu=bool(e.flags & RELU), in_scale=1.0, out_scale=1.0,
                     w_scale=np.ones(len(e.bias)), weight_bits=wbits)


def _golden(idx: int, x: np.ndarray, e: Entry, heads: list[Head]
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """(raw accumulators, requantised outputs or None for a raw run) the golden model gives."""
    if e.kind == "rom":
        return x @ e.weight.T + e.bias, linear_golden(x, _rom_layer(e))
    if e.kind == "av":
        acc = x @ heads[(idx - 1) // 2][4]  # P.V, no bias
        return acc, requantize(acc, e.mult, e.shift)
    kmat = heads[(idx - 1) // 2][0].weight
    return np.asarray(x, dtype=np.int64) @ kmat.T, None  # Q.K^T, raw int32


def _build_case(c: Case, tokens: list[int], heads: list[int],
                files: Path) -> tuple[dict[str, int | str], dict[str, Any],
                                      list[dict[str, Any]]]:
    """The program, memories and runs of one case: parameters for the DUT, the JSON case for
    the bench, and per run what the test expects."""
    pe, simd = c.pe, c.simd
    rng = np.random.default_rng(c.seed)  # one stream, drawn in a fixed order: the case's seed
    rom = _rom_entry(c, rng)
    pairs = [_head(t, hd, rng) for t, hd in zip(tokens, heads, strict=True)]
    entries = [rom, *(e for qk, av, *_ in pairs for e in (qk, av))]
    params = _write_memories(entries, c, files)
    # The operands of a streamed run are written either between runs or during the run before
    # it, which reads the other half (or no half: the ROM layer).
    runs: list[dict[str, Any]] = []
    expect: list[dict[str, Any]] = []
    during_seen = between_seen = False
    for i, (idx, x) in enumerate(_run_order(pairs, rom.k, rng)):
        e = entries[idx]
        run = _run(idx, x, e, pe, simd, c.stall)
        runs.append(run)
        if e.flags & STREAM:
            writes = _operand_writes(e, pe, simd, rng)
            # During the previous run where there is one, else (and sometimes) between runs.
            during = i > 0 and (c.overlap or not during_seen
                                or (between_seen and bool(rng.integers(0, 2))))
            if during:
                runs[i - 1]["writes_during"] = writes
                during_seen = True
            else:
                run["writes_before"] = writes
                between_seen = True
        acc, y = _golden(idx, x, e, pairs)
        nf, sf = e.folds(pe, simd)
        expect.append({"entry": e, "nf": nf, "sf": sf, "rows": x.shape[0], "acc": acc, "y": y,
                       "folds": e.weight_folds(pe, c.groups),
                       "pair": c.pair and e.kind == "rom", "groups": c.groups})
    for run, ex in zip(runs, expect, strict=True):
        ex["writes_during"] = len(run["writes_during"])
    # The program always starts with the ROM layer, so overlap leaves no write between runs.
    assert during_seen and (between_seen or c.overlap)
    case = {"seed": c.seed, "runs": runs}
    return params, case, expect


def _pair_order(rows: int, nf: int, folds: int, groups: int) -> list[int]:
    """Where each output beat of a PAIR run belongs in row-major order (row * nf + beat): a
    pair's folds one after the other, each the first row's beats of the fold, then the
    second's (an odd run's last pair has no second)."""
    order = []
    for first in range(0, rows, 2):
        for f in range(folds):
            beats = range(f * groups, min(nf, (f + 1) * groups))
            for row in range(first, min(rows, first + 2)):
                order += [row * nf + b for b in beats]
    return order


def _judge(pe: int, expect: list[dict[str, Any]], result: dict[str, Any],
           full_rate: bool, latency: int) -> tuple[int, list[tuple[str, int, int, int]]]:
    """Compare every run; return the number of compared values and per run (kind, ideal cycles,
    measured start-to-done cycles, cycles from start to the first output beat)."""
    compared = 0
    timing = []
    assert len(result["runs"]) == len(expect)
    for i, (ex, got) in enumerate(zip(expect, result["runs"], strict=True)):
        e, nf, rows = ex["entry"], ex["nf"], ex["rows"]
        where = f"run {i} ({e.kind}, N={e.n} K={e.k} rows={rows})"
        beats = rows * nf
        assert len(got["data"]) == beats, where
        assert got["last"] == [0] * (beats - 1) + [1], f"{where}: out_last"
        assert got["dones"] == 1 and got["idle_before"] == 1 and got["idle_after"] == 1, where
        if ex["writes_during"]:  # the operand writes really overlapped the run
            assert 0 < got["writes_busy"] <= ex["writes_during"], where
        if ex["pair"]:  # back to row-major order
            order = _pair_order(rows, nf, ex["folds"], ex["groups"])
            assert sorted(order) == list(range(beats))
            for key in ("raw", "data"):
                arrived = got[key]
                got[key] = [0] * beats
                for at, value in zip(order, arrived, strict=True):
                    got[key][at] = value
        raw = np.array([_lanes(w, 32, pe) for w in got["raw"]]).reshape(rows, nf * pe)[:, :e.n]
        assert np.array_equal(raw, ex["acc"]), f"{where}: raw accumulators differ"
        compared += raw.size
        if ex["y"] is not None:
            y = np.array([_lanes(w, 8, pe) for w in got["data"]]).reshape(rows, nf * pe)[:, :e.n]
            assert np.array_equal(y, ex["y"]), f"{where}: requantised outputs differ"
            compared += y.size
        iterations = -(-rows // 2) if ex["pair"] else rows
        ideal = iterations * ex["folds"] * ex["sf"]
        cycles = got["done"] - got["start"]
        if full_rate:
            slack = latency + (ex["sf"] if ex["pair"] else 0)
            assert ideal <= cycles <= ideal + slack, f"{where}: {cycles} vs {ideal}"
        timing.append((e.kind, ideal, cycles, got["beat_cycles"][0] - got["start"]))
    return compared, timing


CASES = {
    # packed pairs of PEs, at the DSP48E1 shift and (under stalls) the DSP48E2 one
    "pe16_simd4": Case(16, 4, 11, [17, 1, None, None], [64, 4, 8, 16], stall=False, pack=16),
    "pe4_simd16": Case(4, 16, 12, [40, 17, None, None], [16, 64, 4, 8], stall=True, pack=18),
    # DeiT-Tiny (D = 192, 3 heads of hd = 64, T = 197) on a KV260 candidate folding: one
    # head (~80k cycles of Q.K^T and A.V, ~5 s simulated; the ~20 s Verilator build is most of
    # a case, so more heads would buy little) after a K=192 -> N=64 int4 ROM layer (a head's
    # slice of the QKV projection). Full rate, so the cycle counts are checked; K is written
    # from the ROM run on and V during Q.K^T, each into the half the running entry leaves.
    # With three row groups (as the DeiT-Tiny design has): the ROM layer's 16 beats a row in
    # folds of 3, the last of one beat.
    "deit_pe4_simd16": Case(4, 16, 21, [197], [64], stall=False, rom=(192, 64), overlap=True,
                            groups=3),
    # Row groups under stalls, on a ROM layer of fewer input folds (2) than groups (3), so the
    # issue waits for the serializer, and 8 beats a row, the last fold of two.
    "pe4_simd4_g3": Case(4, 4, 13, [9, None], [8, 12], stall=True, rom=(8, 30), groups=3),
    # Tokens in pairs (PAIR): the ROM layer's rows two a weight word, four products a DSP48E2,
    # between streamed runs on the same DSPs. Full rate at the DeiT-Tiny head's width, then
    # under stalls with a ROM layer of 6 beats a row (the last fold of two beats, the rows'
    # count drawn, odd ones ending in a single row).
    "pair_pe4_simd16": Case(4, 16, 31, [197], [64], stall=False, rom=(192, 64), overlap=True,
                            pack=18, groups=3, pair=True),
    "pair_pe4_simd4": Case(4, 4, 32, [9, None], [8, 12], stall=True, rom=(30, 20), pack=18,
                           groups=3, pair=True),
    # SIMD 6: the combining stage subtracts the high fields' offset (not a power of two)
    "pair_pe4_simd6": Case(4, 6, 33, [9, None], [12, 6], stall=True, rom=(30, 20), pack=18,
                           groups=3, pair=True),
}


@pytest.mark.verilator
@pytest.mark.parametrize("name", sorted(CASES))
def test_streamed_operand_bit_exact(name: str, tmp_path: Path) -> None:
    c = CASES[name]
    rng = np.random.default_rng(c.seed + 1000)
    tokens = [t if t is not None else int(rng.integers(1, 41)) for t in c.tokens]
    heads = [int(h) for h in rng.permutation(c.heads)]
    files = tmp_path / "mem"
    files.mkdir()
    params, case, expect = _build_case(c, tokens, heads, files)
    params["PACK"] = c.pack
    result = run_unit(toplevel="vitfpga_mvu", sources=SOURCES,
                      test_module="vitfpga.sim.tb.mvu_stream_tb", parameters=params, case=case,
                      build_dir=tmp_path / "build", sim="verilator")
    compared, timing = _judge(c.pe, expect, result, full_rate=not c.stall,
                              latency=engine_latency(c.simd, packed=c.pack > 0,
                                                     groups=c.groups, pairs=c.pair))
    assert compared > 0
    print(f"{name}: {compared} values compared; OPDEPTH={params['OPDEPTH']}, PACK={c.pack}, "
          f"PG={c.groups}, PAIR={int(c.pair)}; "
          "(kind, rows*NF*SF, start-to-done cycles, start-to-first-beat cycles): "
          + ", ".join(str(t) for t in timing))


LINT_SHAPES = [(16, 4, 0, 0, 1), (16, 4, 96, 16, 1), (4, 16, 0, 0, 1), (4, 16, 100, 18, 1),
               (2, 8, 1, 0, 1), (4, 16, 100, 18, 3), (2, 8, 0, 0, 4), (4, 16, 100, 18, -3),
               (4, 12, 100, 18, -3)]
# groups < 0: that many groups with tokens in pairs (PAIR, int2 weights)
PAIR_PARAMS = ["-GPAIR=1", "-GWBITS=2", "-GLANE_BITS=2", "-GOFFSET_STEP=2", "-GWMASK=4"]


@pytest.mark.verilator
@pytest.mark.parametrize(("pe", "simd", "opdepth", "pack", "groups"), LINT_SHAPES)
def test_mvu_lints_clean(pe: int, simd: int, opdepth: int, pack: int, groups: int) -> None:
    with tool_env("verilator"):
        done = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "vitfpga_mvu",
                               f"-GPE={pe}", f"-GSIMD={simd}", f"-GOPDEPTH={opdepth}",
                               f"-GPACK={pack}", f"-GPG={abs(groups)}",
                               *(PAIR_PARAMS if groups < 0 else []), *map(str, SOURCES)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.icarus
@pytest.mark.parametrize(("opdepth", "groups"), [(0, 1), (96, 1), (96, 3), (96, -3)])
def test_mvu_compiles_under_icarus(opdepth: int, groups: int, tmp_path: Path) -> None:
    pair = [f"-Pvitfpga_mvu.{p[2:]}" for p in PAIR_PARAMS] + ["-Pvitfpga_mvu.PACK=18"]
    done = subprocess.run(["iverilog", "-g2005", "-Wall", "-s", "vitfpga_mvu",
                           f"-Pvitfpga_mvu.OPDEPTH={opdepth}", f"-Pvitfpga_mvu.PG={abs(groups)}",
                           *(pair if groups < 0 else []), "-o", str(tmp_path / "mvu.vvp"),
                           *map(str, SOURCES)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
