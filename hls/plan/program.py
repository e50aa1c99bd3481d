"""Compile the whole integer ViT into the program of the whole-model hardware (docs/vit.md).

The whole-model top (`vitfpga_vit`) holds a whole image on chip: `XM`, the int16 residual
stream (plus the position embedding and the class-token row, loaded with the bitstream), and
`BM`, every int8 tensor (patches, q/k/v, one head's probabilities, attention
outputs, the MLP hidden layer). Both are element-addressed memories read and written `LANES`
consecutive elements at a time. A program of ops runs one op at a time; each op streams from one
memory through one unit into one memory:

- INPUT: patch rows from the input stream into BM.
- LINEAR: BM rows through the matmul engine (a program entry of the engine: a weight layer, or an
  attention product whose operand the FILL ops wrote), into a sink: BM, BM through the GELU
  table, an int16 add into XM (residual add; the position embedding), the softmax unit into BM,
  or the output stream (logits).
- LN: XM rows through the LayerNorm unit straight into the matmul engine (a weight layer's
  entry), into the LINEAR sinks; the normalised rows never land in a memory, so the LayerNorm
  runs beside the engine instead of before it.
- FILLK / FILLV: one head's K (as Q·Kᵀ's operand) or V (transposed, as A·V's) from BM into the
  engine's operand buffer.
- XCOPY: XM to XM (the class-token row).

Python decides every address, stride and constant here; the Verilog only counts. `execute` runs
the same program on numpy arrays, op by op, with the hardware's memory layouts: it is the
reference the RTL is debugged against, and a test holds it equal to the golden forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from vitfpga.errors import BadInput
from vitfpga.hls.plan.boards import part_family
from vitfpga.hls.plan.engine import LayerSlot, ModelPlan
from vitfpga.hls.plan.layout import CHANNEL_PAD
from vitfpga.runtime.forward import IDENTITY, quantise_images
from vitfpga.runtime.intmath import int_add, int_layernorm, int_softmax, lut_apply, requantize
from vitfpga.runtime.model import IntLinear, IntModel, linear_golden, slot_layers

__all__ = ["KINDS", "LN_LANES_MAX", "OP_BITS", "OP_FIELDS", "PACK_SHIFT", "SINKS",
           "SOFTMAX_LANES_MAX", "VitOp", "VitProgram",
           "compile_vit", "execute", "ln_choices", "ln_lanes", "op_words", "pack_shift",
           "pair_weights", "sm_choices", "tokens_in_pairs"]

# One program word per op, fields LSB first: (name, bits). The Verilog top reads the offsets
# that `field_offsets` computes from this table.
OP_FIELDS = (("kind", 4), ("sink", 4), ("rows", 16), ("src", 24), ("src_stride", 16),
             ("src_len", 16), ("dst", 24), ("dst_stride", 16), ("dst_len", 16), ("aux", 24),
             ("aux_stride", 16), ("entry", 16), ("sf", 16), ("nf", 16), ("m0", 32), ("s0", 8),
             ("m1", 32), ("s1", 8), ("eps", 48), ("pmax", 8), ("beats", 16), ("pair", 8))
OP_BITS = sum(bits for _, bits in OP_FIELDS)
KINDS = {"end": 0, "input": 1, "linear": 2, "ln": 3, "fillk": 4, "fillv": 5, "xcopy": 6}
SINKS = {"bm": 0, "gelu": 1, "add": 2, "out": 3, "softmax": 4}
LN_LANES_MAX = 8
SOFTMAX_LANES_MAX = 64  # vitfpga_softmax_vec.v: L in 1..64
# Engine program entry flags (docs/engine.md, streamed operand): the entry's `relu` byte.
STREAM, RAW = 2, 4
# A streamed-operand entry reads int8 operand words, not a weight stream: its decoder fields.
_OPERAND = {"codec": 0, "ebits": 8, "wbits": 8}
# vitfpga_mulpack.v mul2x8: two int8 products a DSP48, the packed operand's shift per family
# (27-bit A port of a DSP48E2, 25-bit of a DSP48E1).
PACK_SHIFT = {"xcup": 18, "xc7": 16}


def pack_shift(plan: ModelPlan) -> int:
    """The whole-model engine's PACK (vitfpga_mvu.v): PE pairs share each input lane, so one DSP
    computes both PEs' int8 products; 0 where a pair's PEs would see different inputs (an N:M
    decoder), where PE is odd, or on a family without a known shift."""
    if plan.pe % 2 or plan.nm:
        return 0
    return PACK_SHIFT.get(part_family(plan.part), 0)


def tokens_in_pairs(model: IntModel, plan: ModelPlan) -> bool:
    """Whether the engine takes a weight layer's rows two a weight word (vitfpga_mvu.v PAIR,
    four products a DSP48E2, vitfpga_mulpack.v vitfpga_mul2x2): on a packed DSP48E2 engine of
    row groups whose weights are 2-bit and all in [-1, 1], where the products' fields are exact
    (docs/engine.md, "Tokens in pairs")."""
    if (pack_shift(plan) != 18 or plan.groups < 2 or plan.weight_bits != 2
            or any(s.sf < 2 * plan.groups for s in plan.layers)):
        return False  # (a pair's fold leaves in 2*PG beats: at least that many folds a row)
    return pair_weights([model.layers[s.name] for s in plan.layers])


def pair_weights(layers: Iterable[IntLinear]) -> bool:
    """Every weight in [-1, 1]: the range whose products by x + 128 fit 9 bits
    (`tokens_in_pairs`)."""
    return all(int(np.abs(layer.weight).max(initial=0)) <= 1 for layer in layers)


@dataclass(frozen=True)
class VitOp:
    name: str  # what the report shows: "blocks.0.attn.qk.h1"
    kind: str
    fields: dict[str, int]
    ideal: dict[str, int]  # unit -> ideal cycles of this op on it (engine, ln, softmax, ...)

    @property
    def bound(self) -> tuple[str, int]:
        """(unit, cycles): the op's slowest unit. The units of one op run overlapped (Q·Kᵀ's
        raw scores stream through the serialiser into the softmax while the engine computes
        the next ones), so the op takes at least its slowest unit's cycles, not their sum."""
        if not self.ideal:
            return "", 0
        unit = max(self.ideal, key=lambda u: self.ideal[u])  # ties: the first listed
        return unit, self.ideal[unit]

    @property
    def sink(self) -> str:
        return next(k for k, v in SINKS.items() if v == self.fields.get("sink", 0))


@dataclass(frozen=True)
class VitProgram:
    """Everything the whole-model hardware holds besides the engine's weight layers."""

    lanes: int
    tokens: int
    dim: int
    ops: tuple[VitOp, ...]
    ln_lanes: int  # LayerNorm elements a clock (vitfpga_layernorm_vec.v: divides dim)
    sm_lanes: int  # softmax scores a clock (vitfpga_softmax_vec.v: divides PE)
    xm_depth: int  # elements
    bm_depth: int
    xm_init: tuple[int, ...]  # int16 elements, the rest zero
    op_depth: int  # operand buffer words (two halves)
    entries: tuple[dict[str, int], ...]  # engine program entries after the plan's layers
    tables: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per-lane values
    ln_gamma: tuple[int, ...] = ()
    ln_beta: tuple[int, ...] = ()
    gelu: tuple[int, ...] = ()  # int8, 256 per block
    exp_lut: tuple[int, ...] = ()
    max_sf: int = 1
    out_beats: int = 1  # output beats per image
    in_beats: int = 1
    macs: int = 0  # multiply-accumulates per image: the linear layers and Q·Kᵀ, A·V
    # Every XM / BM address the program issues is a multiple of these (powers of two up to
    # `lanes`), so the memories rotate their lanes in steps of them (vitfpga_vmem.v ALIGN).
    xm_align: int = 1
    bm_align: int = 1
    pairs: bool = False  # weight layers' rows two a weight word (`tokens_in_pairs`)

    @property
    def row_beats(self) -> int:
        """Input beats per patch row (K zero-padded to whole SIMD beats); the class token is
        made on chip, so an image is `tokens - 1` rows."""
        return self.in_beats // (self.tokens - 1)

    def ideal_cycles(self) -> dict[str, int]:
        """unit -> cycles it is busy per image. Units overlap within an op, so these add up to
        more than an image takes: see `bound_cycles`."""
        total: dict[str, int] = {}
        for op in self.ops:
            for unit, cycles in op.ideal.items():
                total[unit] = total.get(unit, 0) + cycles
        return total

    def bound_by_unit(self) -> dict[str, int]:
        """unit -> the cycles per image in which it is the slowest unit of the running op: the
        critical path by unit, adding up to `bound_cycles`."""
        total: dict[str, int] = {}
        for op in self.ops:
            unit, cycles = op.bound
            if unit:
                total[unit] = total.get(unit, 0) + cycles
        return total

    def bound_cycles(self) -> int:
        """A lower bound on the cycles per image: ops run one at a time, each at least as long as
        its slowest unit (the sequencer, fills' and units' latencies come on top)."""
        return sum(op.bound[1] for op in self.ops)


def op_words(ops: tuple[VitOp, ...]) -> list[int]:
    words = []
    for op in ops:
        word, offset = 0, 0
        values = {"kind": KINDS[op.kind], **op.fields}
        for name, bits in OP_FIELDS:
            value = int(values.get(name, 0))
            if not 0 <= value < 2**bits:
                raise BadInput(f"whole-model program: {op.name} field {name}={value} does not "
                               f"fit {bits} bits")
            word |= value << offset
            offset += bits
        words.append(word)
    return words


def field_offsets() -> dict[str, tuple[int, int]]:
    """name -> (lsb, bits) of OP_FIELDS, for the Verilog top."""
    out, offset = {}, 0
    for name, bits in OP_FIELDS:
        out[name] = (offset, bits)
        offset += bits
    return out


class _Alloc:
    def __init__(self) -> None:
        self.size = 0

    def take(self, elements: int) -> int:
        base = self.size
        self.size += elements
        return base


def _ms(pair: object) -> tuple[int, int]:
    m, s = (int(v) for v in np.asarray(pair).reshape(-1)[:2])
    return m, s


@dataclass(frozen=True)
class _Dims:
    """The shapes every op's fields derive from: the model's, folded onto the engine."""

    pe: int
    simd: int
    lanes: int
    ln_lanes: int
    sm_lanes: int
    patches: int
    tokens: int
    dim: int
    hd: int  # head dim
    heads: int
    width: int  # heads * hd: the attention output's row
    qkv_width: int
    hidden: int
    sf_pe: int  # patch row beats: K zero-padded to whole SIMD beats
    ranks: tuple[int, ...]  # low-rank slots' middle widths
    sf_qk: int
    nf_qk: int
    sf_av: int
    nf_av: int
    half: int  # operand buffer words per half (the larger of Q·Kᵀ's and A·V's operand)
    p_stride: int  # a probability row's elements in BM: tokens rounded up to whole words


@dataclass(frozen=True)
class _Layout:
    """Element addresses of every tensor in XM and BM."""

    xm_depth: int
    bm_depth: int
    x_base: int  # the residual stream
    pos_base: int
    cls_base: int
    u_base: int  # a low-rank slot's middle
    p_in: int  # patches (the shared region's first phase)
    qkv_base: int
    p_base: int  # one head's probabilities
    o_base: int  # attention out
    h_base: int  # the MLP's hidden layer


def _check_whole_model(model: IntModel) -> None:
    if model.spec.pool != "token":
        raise BadInput(f"whole-model hardware: the model pools by '{model.spec.pool}'; the "
                       f"whole-model design runs class-token pooling only (the host-offload "
                       f"design runs both)")
    for key in model.params:
        if key.startswith("hop.") or key.endswith(".sum"):
            raise BadInput(f"whole-model hardware: the model has {key} (a requantising hop or "
                           f"a sparse-sum slot), which only the host-offload design runs")


def ln_choices(dim: int, lanes: int) -> tuple[int, ...]:
    """The LayerNorm lane counts a design may use: powers of two that divide the row (the
    unit's contract), up to `lanes` (the engine's SIMD: the core packs the unit's outputs into
    whole engine beats) and LN_LANES_MAX (a lane of
    vitfpga_layernorm_vec.v is a 16-step divider and an acc*M product, ~1.6k LUT and 7 DSP on
    UltraScale+)."""
    out, n = [], 1
    while n <= min(lanes, LN_LANES_MAX) and dim % n == 0:
        out.append(n)
        n *= 2
    return tuple(out)


def sm_choices(pe: int) -> tuple[int, ...]:
    """The softmax lane counts a design on PE lanes may use, widest first: powers of two that
    divide PE, up to SOFTMAX_LANES_MAX. Below PE a gearbox in the core hands the engine's
    beats on in parts (vitfpga_vit_core.v); each lane is several wide products (10 DSP48E1 on
    7-series), so halving the lanes frees DSPs for the engine."""
    out, n = [], 1
    while n <= min(pe, SOFTMAX_LANES_MAX) and pe % n == 0:
        out.append(n)
        n *= 2
    return tuple(reversed(out))


def ln_lanes(dim: int, lanes: int) -> int:
    """The widest LayerNorm `ln_choices` allows."""
    return ln_choices(dim, lanes)[-1]


def _dims(model: IntModel, plan: ModelPlan, ln: int | None, sm: int) -> _Dims:
    spec = model.spec
    pe, simd, tokens, hd = plan.pe, plan.simd, spec.tokens, spec.head_dim
    qkv_width = model.layers[slot_layers(model.layers, "blocks.0.attn.qkv")[-1]].n
    heads = qkv_width // (3 * hd)
    kpe = model.layers[slot_layers(model.layers, "patch_embed")[0]].k
    # Attention products as engine entries: Q·Kᵀ folds head_dim x tokens, A·V tokens x head_dim;
    # the operand buffer's two halves each hold the larger operand.
    sf_qk, nf_qk = math.ceil(hd / simd), math.ceil(tokens / pe)
    sf_av, nf_av = math.ceil(tokens / simd), math.ceil(hd / pe)
    lanes = max(pe, simd, 2)  # the memories' port width; 2 keeps their lane index a vector
    return _Dims(
        pe=pe, simd=simd, lanes=lanes,
        ln_lanes=ln_lanes(spec.dim, simd) if ln is None else ln, sm_lanes=sm,
        patches=spec.patches, tokens=tokens, dim=spec.dim, hd=hd, heads=heads,
        width=heads * hd, qkv_width=qkv_width,
        hidden=model.layers[slot_layers(model.layers, "blocks.0.mlp.fc1")[-1]].n,
        sf_pe=math.ceil(kpe / simd),
        ranks=tuple(model.layers[n].n for n in model.layers if n.endswith(".u")),
        sf_qk=sf_qk, nf_qk=nf_qk, sf_av=sf_av, nf_av=nf_av,
        half=max(sf_qk * nf_qk, sf_av * nf_av),
        p_stride=-(-tokens // lanes) * lanes)


def _layout(d: _Dims) -> _Layout:
    xm, bm = _Alloc(), _Alloc()
    x_base = xm.take(d.tokens * d.dim)
    pos_base = xm.take(d.tokens * d.dim)
    cls_base = xm.take(d.dim)
    # BM by liveness: the patches die at the patch embedding, q/k/v, one head's probabilities
    # and the attention output live through attention only, the MLP's hidden layer through the
    # MLP only, so those three phases share one region (DeiT-Tiny: 228 kB instead of 530 kB).
    # U (a low-rank slot's middle) is read in more than one phase. The LayerNorm's output
    # goes straight into the engine (LN ops), so it takes no region.
    u_base = bm.take(d.tokens * max(d.ranks, default=0))
    shared = bm.take(max(d.patches * d.sf_pe * d.simd,
                         d.tokens * (d.qkv_width + d.p_stride + d.width),
                         d.tokens * d.hidden))
    p_base = shared + d.tokens * d.qkv_width
    return _Layout(xm_depth=xm.size, bm_depth=bm.size, x_base=x_base, pos_base=pos_base,
                   cls_base=cls_base, u_base=u_base, p_in=shared,
                   qkv_base=shared, p_base=p_base, o_base=p_base + d.tokens * d.p_stride,
                   h_base=shared)


def _xm_init(model: IntModel, d: _Dims, mem: _Layout) -> np.ndarray:
    """XM's bitstream contents: the position embedding, and the class token row (class token
    plus its position embedding, added once here rather than by an op)."""
    pos = np.asarray(model.params["embed.pos"], dtype=np.int64)
    cls = int_add([model.params["embed.cls"], pos[0]],
                  np.array([IDENTITY, IDENTITY], dtype=np.int64), model.res_bits)
    xm_init = np.zeros(mem.xm_depth, dtype=np.int64)
    xm_init[mem.pos_base:mem.pos_base + d.tokens * d.dim] = pos.reshape(-1)
    xm_init[mem.cls_base:mem.cls_base + d.dim] = cls
    return xm_init


def _add_fields(params: object, a_row: int, x_row: int) -> dict[str, int]:
    """The add sink's two requantisations: of the linear's output (row `a_row` of `params`)
    and of the XM operand (row `x_row`)."""
    p = np.asarray(params).reshape(-1, 2)
    (m0, s0), (m1, s1) = _ms(p[a_row]), _ms(p[x_row])
    return {"m0": m0, "s0": s0, "m1": m1, "s1": s1}


class _Builder:
    """Appends ops, engine entries and unit tables in program order: one method per op kind,
    so each kind's fields and ideal cycles are decided in one place."""

    def __init__(self, model: IntModel, plan: ModelPlan, d: _Dims, mem: _Layout,
                 pairs: bool) -> None:
        self.model, self.plan, self.d, self.mem = model, plan, d, mem
        self.pairs = pairs
        self.entry_of = {s.name: i for i, s in enumerate(plan.layers)}
        self.ops: list[VitOp] = []
        self.entries: list[dict[str, int]] = []
        self.tables: dict[str, list[int]] = {"bias": [], "mult": [], "shift": []}
        self.c_next = plan.channel_depth  # attention tables go after the plan's layers'
        self.ln_gamma: list[int] = []
        self.ln_beta: list[int] = []
        self.gelu: list[int] = []
        # Q·Kᵀ (raw scores) of every block shares one table of zero biases
        self.qk_table = self._table(CHANNEL_PAD["mult"][1], CHANNEL_PAD["shift"][1], d.nf_qk)

    def _op(self, name: str, kind: str, ideal: dict[str, int], **fields: int) -> None:
        self.ops.append(VitOp(name=name, kind=kind, fields=fields, ideal=ideal))

    def _table(self, mult: int, shift: int, words: int) -> int:
        """Channel table words of one requantisation for every PE lane; returns their base."""
        base = self.c_next
        for _ in range(words * self.d.pe):
            self.tables["bias"].append(0)
            self.tables["mult"].append(mult)
            self.tables["shift"].append(shift)
        self.c_next += words
        return base

    # INPUT ------------------------------------------------------------------------------------
    def input(self) -> None:
        d = self.d
        self._op("input", "input", {"input": d.patches * d.sf_pe}, rows=d.patches, sf=d.sf_pe,
                 dst=self.mem.p_in, dst_stride=d.sf_pe * d.simd)

    # XCOPY ------------------------------------------------------------------------------------
    def xcopy_cls(self) -> None:
        """The class token row (from the bitstream) into the residual stream's row 0."""
        beats = math.ceil(self.d.dim / self.d.lanes)
        self._op("embed.cls", "xcopy", {"copy": beats}, rows=1, src=self.mem.cls_base,
                 src_len=self.d.dim, dst=self.mem.x_base, sf=beats)

    # LINEAR, a weight layer into one of its sinks ---------------------------------------------
    def _linear(self, name: str, layer: str, rows: int, src: int, stride: int, sink: str,
                norm: str = "", **kw: int) -> None:
        """`layer` on `rows` rows from BM at `src`, or with `norm`, LayerNorm `norm` of XM's
        rows at `src` straight into it (an LN op), into `sink`."""
        entry = self.entry_of[layer]
        slot = self.plan.layers[entry]
        # The engine's entry holds its own compute folds; the op says how many input beats a
        # row has (R per N:M iteration), which the reader (LINEAR) or the LayerNorm's packer
        # (LN, zero beats past the row) sends.
        ideal = {"engine": slot.ideal_cycles(rows, self.pairs)}
        fields = {"rows": rows, "entry": entry, "nf": slot.nf, "sink": SINKS[sink],
                  "pair": int(self.pairs), **kw}
        if norm:
            fields.update(self._ln_fields(norm, src, stride), beats=slot.beats)
            ideal["ln"] = rows * self.d.dim // self.d.ln_lanes
            self._op(f"{norm}+{name}", "ln", ideal, **fields)
        else:
            self._op(name, "linear", ideal, src=src, src_stride=stride, src_len=slot.k,
                     sf=slot.beats, **fields)

    def slot(self, slot: str, rows: int, src: int, stride: int, sink: str, norm: str = "",
             **kw: int) -> None:
        """One model slot: a low-rank slot is two linears, u into BM's U region, then v. With
        `norm` its first linear takes LayerNorm `norm` of XM's rows at `src`."""
        names = slot_layers(self.model.layers, slot)
        if len(names) == 2:
            rank = self.model.layers[names[0]].n
            u_base = self.mem.u_base
            self._linear(f"{slot}.u", names[0], rows, src, stride, "bm", norm, dst=u_base,
                         dst_stride=rank, dst_len=rank)
            src, stride, norm = u_base, rank, ""
        self._linear(slot, names[-1], rows, src, stride, sink, norm, **kw)

    def patch_embed(self) -> None:
        """Patches into residual rows 1.. with the position embedding added (add sink)."""
        d, mem = self.d, self.mem
        self.slot("patch_embed", d.patches, mem.p_in, d.sf_pe * d.simd, "add",
                  dst=mem.x_base + d.dim, dst_stride=d.dim, dst_len=d.dim,
                  aux=mem.pos_base + d.dim, aux_stride=d.dim,
                  **_add_fields(self.model.params["embed.add"], 0, 1))

    def residual(self, slot: str, src: int, stride: int, add: str) -> None:
        """A block's projection back into the residual stream (add sink, in place in XM)."""
        x = self.mem.x_base
        self.slot(slot, self.d.tokens, src, stride, "add", dst=x, dst_stride=self.d.dim,
                  dst_len=self.d.dim, aux=x, aux_stride=self.d.dim,
                  **_add_fields(self.model.params[add], 1, 0))

    def mlp_fc1(self, pre: str) -> None:
        """fc1 through this block's GELU table (gelu sink) into BM's hidden region."""
        d = self.d
        gelu_base = len(self.gelu)
        table = [int(v) for v in np.asarray(self.model.params[f"{pre}.mlp.gelu"]).tolist()]
        if len(table) != 256:  # the core reads entry {table number, byte}: no index adder
            raise ValueError(f"{pre}.mlp.gelu has {len(table)} entries, not 256")
        self.gelu.extend(table)
        self.slot(f"{pre}.mlp.fc1", d.tokens, self.mem.x_base, d.dim, "gelu", f"{pre}.norm2",
                  dst=self.mem.h_base, dst_stride=d.hidden, dst_len=d.hidden, aux=gelu_base)

    def head(self) -> LayerSlot:
        """The classifier on the class token's row, into the output stream (out sink); returns
        its plan slot (its output beats are the image's)."""
        head = self.plan.layers[self.entry_of[slot_layers(self.model.layers, "head")[-1]]]
        self.slot("head", 1, self.mem.x_base, self.d.dim, "out", "norm", dst_len=head.n)
        return head

    # LINEAR, attention products (engine entries after the plan's layers) ----------------------
    def attention_entries(self, pre: str) -> int:
        """Append block `pre`'s Q·Kᵀ and A·V engine entries (A·V with its own requantisation
        table); returns Q·Kᵀ's entry, A·V's is the next."""
        d = self.d
        qk_entry = len(self.plan.layers) + len(self.entries)
        self.entries.append({"w_base": 0, "c_base": self.qk_table, "sf": d.sf_qk,
                             "nf": d.nf_qk, "relu": STREAM | RAW, **_OPERAND})
        m_out, s_out = _ms(self.model.params[f"{pre}.attn.out"])
        self.entries.append({"w_base": d.half, "c_base": self._table(m_out, s_out, d.nf_av),
                             "sf": d.sf_av, "nf": d.nf_av, "relu": STREAM, **_OPERAND})
        return qk_entry

    def qk(self, att: str, h: int, entry: int, m_sm: int, s_sm: int) -> None:
        """Head h's Q·Kᵀ, raw scores streamed through the softmax unit (softmax sink) into
        BM's probabilities: the unit takes the engine's PE-score beats as they come, SM_L
        scores a clock, a row in ceil(tokens/SM_L) parts (at SM_L = PE never slower than the
        engine's NF·SF beats a row)."""
        d, mem = self.d, self.mem
        self._op(f"{att}.qk.h{h}", "linear",
                 {"engine": d.tokens * d.sf_qk * d.nf_qk,
                  "softmax": d.tokens * math.ceil(d.tokens / d.sm_lanes)},
                 rows=d.tokens, src=mem.qkv_base + h * d.hd, src_stride=d.qkv_width,
                 src_len=d.hd, entry=entry, sf=d.sf_qk, nf=d.nf_qk, sink=SINKS["softmax"],
                 dst=mem.p_base, dst_stride=d.p_stride, dst_len=d.tokens, m0=m_sm, s0=s_sm,
                 pmax=self.model.prob_max)

    def av(self, att: str, h: int, entry: int) -> None:
        """Head h's A·V into its columns of BM's attention output (bm sink)."""
        d, mem = self.d, self.mem
        self._op(f"{att}.av.h{h}", "linear", {"engine": d.tokens * d.sf_av * d.nf_av},
                 rows=d.tokens, src=mem.p_base, src_stride=d.p_stride, src_len=d.tokens,
                 entry=entry, sf=d.sf_av, nf=d.nf_av, sink=SINKS["bm"],
                 dst=mem.o_base + h * d.hd, dst_stride=d.width, dst_len=d.hd)

    # LN ---------------------------------------------------------------------------------------
    def _ln_fields(self, name: str, src: int, stride: int) -> dict[str, int]:
        """An LN op's LayerNorm fields: XM rows at `src` in beats of LN_L, (M, S, eps), and
        its gamma and beta, appended to the unit's tables, at `aux_stride` (`aux` is the
        sink's: the GELU table)."""
        d, params = self.d, self.model.params
        m, s, eps = (int(v) for v in np.asarray(params[f"{name}.meta"]).tolist())
        pbase = len(self.ln_gamma)
        self.ln_gamma.extend(int(v) for v in np.asarray(params[f"{name}.gamma"]).tolist())
        self.ln_beta.extend(int(v) for v in np.asarray(params[f"{name}.beta"]).tolist())
        return {"src": src, "src_stride": stride, "src_len": d.dim, "sf": d.dim // d.ln_lanes,
                "aux_stride": pbase, "m0": m, "s0": s, "eps": eps}

    # FILLK / FILLV ----------------------------------------------------------------------------
    def fillk(self, att: str, h: int) -> None:
        """Head h's K into the operand buffer's first half, as Q·Kᵀ's operand."""
        d = self.d
        self._op(f"{att}.fillk.h{h}", "fillk", {"fill": d.tokens * d.sf_qk}, rows=d.tokens,
                 src=self.mem.qkv_base + d.width + h * d.hd, src_stride=d.qkv_width,
                 src_len=d.hd, aux=0, sf=d.sf_qk)

    def fillv(self, att: str, h: int) -> None:
        """Head h's V, transposed, into the operand buffer's second half, as A·V's operand."""
        d = self.d
        self._op(f"{att}.fillv.h{h}", "fillv", {"fill": d.tokens * d.nf_av}, rows=d.tokens,
                 src=self.mem.qkv_base + 2 * d.width + h * d.hd, src_stride=d.qkv_width,
                 src_len=d.hd, aux=d.half, sf=d.sf_av, nf=d.nf_av)

    # END --------------------------------------------------------------------------------------
    def end(self) -> None:
        self._op("end", "end", {})


def _block(b: _Builder, i: int) -> None:
    """Transformer block i: attention head by head, then the MLP."""
    d, mem, pre = b.d, b.mem, f"blocks.{i}"
    b.slot(f"{pre}.attn.qkv", d.tokens, mem.x_base, d.dim, "bm", f"{pre}.norm1",
           dst=mem.qkv_base, dst_stride=d.qkv_width, dst_len=d.qkv_width)
    qk_entry = b.attention_entries(pre)
    m_sm, s_sm = _ms(b.model.params[f"{pre}.attn.softmax"])
    att = f"{pre}.attn"
    for h in range(d.heads):
        b.fillk(att, h)
        b.fillv(att, h)
        b.qk(att, h, qk_entry, m_sm, s_sm)
        b.av(att, h, qk_entry + 1)
    b.residual(f"{pre}.attn.proj", mem.o_base, d.width, f"{pre}.add1")
    b.mlp_fc1(pre)
    b.residual(f"{pre}.mlp.fc2", mem.h_base, d.hidden, f"{pre}.add2")


def compile_vit(model: IntModel, plan: ModelPlan, ln: int | None = None,
                sm: int | None = None, pairs: bool | None = None) -> VitProgram:
    """The op program, memory layouts and tables of `model` on the engine of `plan`, with `ln`
    LayerNorm lanes (default `ln_lanes`' choice), `sm` softmax lanes (default PE) and the weight
    layers' rows in pairs or not (default: where `tokens_in_pairs` allows); the whole-model
    search tries the others.

    Raises BadInput for what the whole-model hardware does not run (named)."""
    _check_whole_model(model)
    if ln is not None and ln not in ln_choices(model.spec.dim, plan.simd):
        raise BadInput(f"{ln} LayerNorm lanes: expected one of "
                       f"{ln_choices(model.spec.dim, plan.simd)}")
    choices = sm_choices(plan.pe)
    sm = choices[0] if sm is None else sm
    if sm not in choices:
        raise BadInput(f"{sm} softmax lanes: expected one of {choices} "
                       f"(a power of two dividing PE {plan.pe}, at most {SOFTMAX_LANES_MAX})")
    if pairs is None:
        pairs = tokens_in_pairs(model, plan)
    elif pairs and not tokens_in_pairs(model, plan):
        raise BadInput("tokens in pairs need a DSP48E2 engine of row groups with 2-bit weights "
                       "all in [-1, 1] and at least 2 x groups input folds a layer")
    d = _dims(model, plan, ln, sm)
    mem = _layout(d)
    xm_init = _xm_init(model, d, mem)
    b = _Builder(model, plan, d, mem, pairs)
    b.input()
    b.xcopy_cls()
    b.patch_embed()
    for i in range(model.spec.depth):
        _block(b, i)
    head = b.head()
    b.end()
    exp_lut = [int(v) for v in np.asarray(model.params["softmax.exp2_lut"]).tolist()]
    return VitProgram(
        lanes=d.lanes, tokens=d.tokens, dim=d.dim, ops=tuple(b.ops), ln_lanes=d.ln_lanes,
        sm_lanes=d.sm_lanes,
        xm_depth=mem.xm_depth,
        bm_depth=mem.bm_depth, xm_init=tuple(int(v) for v in xm_init), op_depth=2 * d.half,
        entries=tuple(b.entries), tables={k: tuple(v) for k, v in b.tables.items()},
        ln_gamma=tuple(b.ln_gamma), ln_beta=tuple(b.ln_beta), gelu=tuple(b.gelu),
        exp_lut=tuple(exp_lut), max_sf=max(plan.max_beats, d.sf_qk, d.sf_av),
        out_beats=head.nf, in_beats=d.patches * d.sf_pe, macs=_macs(model, d), pairs=b.pairs,
        **{f"{m}_align": a for m, a in _alignment(tuple(b.ops), d).items()})


def _accesses(op: VitOp, d: _Dims) -> list[tuple[str, int, int, int]]:
    """(memory, base, row stride, step) of every run of addresses `op` issues: the reader's
    chunks (vitfpga_vit_core.v chunk_of) and its sink's writes."""
    f = op.fields
    src = (f.get("src", 0), f.get("src_stride", 0))
    dst = (f.get("dst", 0), f.get("dst_stride", 0))
    reads = {"xcopy": ("xm", d.lanes), "ln": ("xm", d.lanes), "linear": ("bm", d.simd),
             "fillk": ("bm", d.simd), "fillv": ("bm", d.pe)}
    out = [(reads[op.kind][0], *src, reads[op.kind][1])] if op.kind in reads else []
    if op.kind == "input":
        out.append(("bm", *dst, d.simd))
    elif op.kind == "xcopy":
        out.append(("xm", *dst, d.lanes))
    elif op.kind in ("linear", "ln") and op.sink != "out":
        step = d.sm_lanes if op.sink == "softmax" else d.pe
        out.append(("xm" if op.sink == "add" else "bm", *dst, step))
        if op.sink == "add":
            out.append(("xm", f.get("aux", 0), f.get("aux_stride", 0), d.pe))
    return out


def _alignment(ops: tuple[VitOp, ...], d: _Dims) -> dict[str, int]:
    """memory -> the largest power of two, at most `lanes`, dividing every address the ops
    issue to it (each is base + row * stride + k * step)."""
    terms: dict[str, int] = {"xm": 0, "bm": 0}
    for op in ops:
        for memory, *values in _accesses(op, d):
            terms[memory] = math.gcd(terms[memory], *values)
    # g & -g: the largest power of two dividing g (a memory no op touches has g = 0)
    return {memory: min(d.lanes, g & -g) if g else d.lanes for memory, g in terms.items()}


def _macs(model: IntModel, d: _Dims) -> int:
    """Multiply-accumulates of one image (what GOPS count, two operations each)."""
    linear = sum(layer.k * layer.n * layer.rows for layer in model.layers.values())
    return linear + model.spec.depth * d.heads * 2 * d.tokens * d.tokens * d.hd


# ----------------------------------------------------------------------------------------------
# The same program on numpy arrays: what each op does to the memories, with the hardware's
# layouts (masks, padding, operand words). Not fast; exact.

def _rows(mem: np.ndarray, base: int, stride: int, rows: int, length: int, width: int
          ) -> np.ndarray:
    """rows x width elements, element k of row r at base + r*stride + k, zero past `length`."""
    out = np.zeros((rows, width), dtype=np.int64)
    for r in range(rows):
        out[r, :length] = mem[base + r * stride:base + r * stride + length]
    return out


def _pad(values: np.ndarray, width: int) -> np.ndarray:
    """`values`' rows zero-padded to `width` elements."""
    out = np.zeros((values.shape[0], width), dtype=np.int64)
    out[:, :values.shape[1]] = values
    return out


def _store(mem: np.ndarray, base: int, stride: int, values: np.ndarray) -> None:
    for r in range(values.shape[0]):
        mem[base + r * stride:base + r * stride + values.shape[1]] = values[r]


@dataclass
class _State:
    """One image's memories while `execute` runs it."""

    xm: np.ndarray
    bm: np.ndarray
    opb: np.ndarray  # the engine's operand buffer: words x PE*SIMD lanes
    tables: dict[str, np.ndarray]  # the program's per-lane tables, as arrays (read-only)
    logits: np.ndarray | None = None


def execute(prog: VitProgram, model: IntModel, plan: ModelPlan, images: object) -> np.ndarray:
    """Run the program on every image; (B, classes) int64 logits."""
    pe, simd = plan.pe, plan.simd
    q = quantise_images(images, model.spec.patch_size, model.input_scale())
    tables = {k: np.asarray(v, dtype=np.int64) for k, v in prog.tables.items()}
    out = []
    for image in q:
        st = _State(xm=np.asarray(prog.xm_init, dtype=np.int64).copy(),
                    bm=np.zeros(prog.bm_depth, dtype=np.int64),
                    opb=np.zeros((prog.op_depth, pe * simd), dtype=np.int64), tables=tables)
        for op in prog.ops:
            f = {k: int(v) for k, v in op.fields.items()}
            if op.kind == "input":
                _store(st.bm, f["dst"], f["dst_stride"], _pad(image, f["sf"] * simd))
            elif op.kind == "xcopy":
                _store(st.xm, f["dst"], 0,
                       _rows(st.xm, f["src"], 0, 1, f["src_len"], f["src_len"]))
            elif op.kind in ("fillk", "fillv"):
                v = _rows(st.bm, f["src"], f["src_stride"], f["rows"], f["src_len"],
                          f["src_len"])
                for j in range(v.shape[0]):
                    for c in range(v.shape[1]):
                        n, k = (j, c) if op.kind == "fillk" else (c, j)
                        word = f["aux"] + (n // pe) * f["sf"] + k // simd
                        st.opb[word, (n % pe) * simd + k % simd] = v[j, c]
            elif op.kind in ("linear", "ln"):
                y = _engine(prog, model, plan, st, f, _engine_input(prog, st, f, op.kind, simd))
                _sink(prog, model, st, f, op.sink, y[:, :f["dst_len"]])
        out.append(st.logits)
    return np.stack(out).astype(np.int64)


def _engine_input(prog: VitProgram, st: _State, f: dict[str, int], kind: str, simd: int
                  ) -> np.ndarray:
    """The engine's input rows of a LINEAR op (BM rows) or an LN op (XM rows through the
    LayerNorm), zero-padded to the op's beats."""
    if kind == "linear":
        return _rows(st.bm, f["src"], f["src_stride"], f["rows"], f["src_len"], f["sf"] * simd)
    x = _rows(st.xm, f["src"], f["src_stride"], f["rows"], f["src_len"], f["src_len"])
    d, a = f["src_len"], f["aux_stride"]
    y = int_layernorm(x, prog.ln_gamma[a:a + d], prog.ln_beta[a:a + d],
                      [f["m0"], f["s0"], f["eps"]])
    return _pad(y, f["beats"] * simd)


def _engine(prog: VitProgram, model: IntModel, plan: ModelPlan, st: _State, f: dict[str, int],
            x: np.ndarray) -> np.ndarray:
    """The engine entry `f["entry"]` on rows `x`: a weight layer's golden, or an attention
    product on the operand buffer's words (raw or requantised)."""
    pe, simd = plan.pe, plan.simd
    if f["entry"] < len(plan.layers):
        layer = model.layers[plan.layers[f["entry"]].name]
        return linear_golden(x[:, :layer.k], layer)
    ent = prog.entries[f["entry"] - len(plan.layers)]
    tables = st.tables
    n_all, k_all = f["nf"] * pe, f["sf"] * simd
    w = np.zeros((n_all, k_all), dtype=np.int64)
    for n in range(n_all):
        for k in range(k_all):
            w[n, k] = st.opb[ent["w_base"] + (n // pe) * f["sf"] + k // simd,
                             (n % pe) * simd + k % simd]
    c = ent["c_base"] - plan.channel_depth
    lanes = slice(c * pe, c * pe + n_all)
    acc = x @ w.T + tables["bias"][lanes]
    return acc if ent["relu"] & RAW else requantize(acc, tables["mult"][lanes],
                                                    tables["shift"][lanes])


def _sink(prog: VitProgram, model: IntModel, st: _State, f: dict[str, int], sink: str,
          y: np.ndarray) -> None:
    """The engine's output rows `y` into the op's sink."""
    if sink == "bm":
        _store(st.bm, f["dst"], f["dst_stride"], y)
    elif sink == "gelu":
        _store(st.bm, f["dst"], f["dst_stride"], lut_apply(y, prog.gelu[f["aux"]:f["aux"] + 256]))
    elif sink == "softmax":
        p = int_softmax(y, f["m0"], f["s0"], prog.exp_lut, f["pmax"])
        _store(st.bm, f["dst"], f["dst_stride"], p)
    elif sink == "add":
        x_old = _rows(st.xm, f["aux"], f["aux_stride"], f["rows"], f["dst_len"], f["dst_len"])
        params = np.array([[f["m0"], f["s0"]], [f["m1"], f["s1"]]])
        _store(st.xm, f["dst"], f["dst_stride"], int_add([y, x_old], params, model.res_bits))
    elif sink == "out":
        st.logits = y[0]
