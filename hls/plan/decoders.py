"""Which weight decoders a model's engine needs, and what they cost (docs/engine.md, "Weight
streams").

Every layer names its codec (`IntLinear.codec`, runtime.codecs). One engine serves all layers,
so its decoder is the union of theirs: the memory lane is as wide as the widest element, the
lane's bit-offset selector has as many positions as the elements' widths make reachable, and
the N:M input window and the codebook table exist only when some layer uses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vitfpga.errors import BadInput
from vitfpga.ir import IntLinear
from vitfpga.runtime.codecs import Codec, NMCodec, UnknownCodec, codec_for

__all__ = ["DecoderSpec", "codecs_spec", "decoder_luts", "layer_codec"]


def layer_codec(layer: IntLinear) -> Codec:
    """The codec that stores `layer`; BadInput naming the layer when it is unknown or the
    weights have no exact encoding under it."""
    try:
        codec = codec_for(layer.codec, layer.weight_bits)
        codec.check(layer.weight)
    except UnknownCodec as e:
        raise BadInput(f"layer {layer.name}: {e}") from None
    return codec


@dataclass(frozen=True)
class DecoderSpec:
    lane_bits: int  # W: weight-memory bits per lane, the widest element
    weight_bits: int  # widest decoded weight: the multipliers' width
    offset_step: int  # element start bits within a lane are multiples of this
    nm: tuple[int, ...]  # (N, M), or () without an N:M layer
    codebook_bits: int  # widest codebook index, 0 without a codebook layer
    widths: tuple[int, ...]  # distinct weight bits of dense and N:M layers
    ternary: bool  # some layer is ternary-packed (three int2 weights in 5 bits)
    shift_bits: int  # widest element narrower than the lane: the bits the selector moves

    @property
    def positions(self) -> int:
        """Offsets an element can start at within a lane."""
        return self.lane_bits // self.offset_step if self.shift_bits else 1

    @property
    def straddles(self) -> bool:
        """Some element may span two words (W is not a multiple of every element width)."""
        return self.offset_step != self.lane_bits

    @property
    def nm_ratio(self) -> int:
        return self.nm[1] // self.nm[0] if self.nm else 1

    def folding_error(self, simd: int) -> str | None:
        if self.nm and simd % self.nm[0]:
            return f"N:M {self.nm[0]}:{self.nm[1]} layers need SIMD a multiple of {self.nm[0]}"
        return None


def codecs_spec(codecs: dict[str, Codec]) -> DecoderSpec:
    """The decoders an engine running these codecs (by layer, from `layer_codec`) needs;
    BadInput when they mix N:M patterns (the input window serves one)."""
    ebits = {c.element_bits for c in codecs.values()}
    lane = max(ebits)
    patterns = {(c.n, c.m) for c in codecs.values() if isinstance(c, NMCodec)}
    if len(patterns) > 1:
        raise BadInput(f"layers mix N:M patterns {sorted(patterns)}; the engine's input window "
                       f"serves one pattern: prune every layer to the same N:M")
    step = math.gcd(lane, *ebits)
    return DecoderSpec(
        lane_bits=lane, weight_bits=max(c.bits for c in codecs.values()), offset_step=step,
        nm=tuple(next(iter(patterns))) if patterns else (),
        codebook_bits=max((c.element_bits for c in codecs.values() if c.family == "codebook"),
                          default=0),
        widths=tuple(sorted({c.bits for c in codecs.values() if c.family in ("dense", "nm")})),
        ternary=any(c.family == "ternary" for c in codecs.values()),
        shift_bits=max((e for e in ebits if e < lane), default=0))


# Per lane, beyond its multiplexers, when any decoder logic exists: what Yosys synth_xilinx of
# the flattened digits engines (PE 16 x SIMD 4, benchmarks/decoder_cost.py) spends around a
# decoder between the weight word and the product (the multiplexers alone, synthesised apart,
# are what `decoder_luts` counts below).
_DECODER_LANE_LUTS = 20


# LUT costs of one lane's decoder, by part (Yosys synth_xilinx, LUT6: a 4:1 multiplexer a LUT).
def _mux_luts(inputs: int, bits: int) -> int:
    return 0 if inputs <= 1 else bits * math.ceil((inputs - 1) / 3)


def decoder_luts(spec: DecoderSpec, pe: int, simd: int) -> int:
    """LUT estimate of the weight decoders of a PE x SIMD array: per lane the bit-offset
    selector, the sign extension of each width, the N:M input select and the codebook lookup."""
    # Elements as wide as the lane always start at bit 0: only `shift_bits` bits are moved.
    per_lane = _mux_luts(spec.positions * (2 if spec.straddles else 1), spec.shift_bits)
    kinds = len(spec.widths) + (1 if spec.codebook_bits else 0) + (1 if spec.ternary else 0)
    per_lane += _mux_luts(kinds, spec.weight_bits)
    if spec.nm:
        per_lane += _mux_luts(spec.nm[1], 8)
    if spec.codebook_bits:
        per_lane += _mux_luts(1 << spec.codebook_bits, spec.weight_bits)
    if spec.ternary:  # 5 bits -> three trits: six 5-input functions, then pick one of three
        per_lane += 3 + _mux_luts(3, 2)
    if per_lane:
        per_lane += _DECODER_LANE_LUTS
    return pe * simd * per_lane
