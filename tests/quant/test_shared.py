"""Shared-decoder encoding (DeepCompress-ViT): initialisation, the learned encoder's attach/drop
round trip on float and Brevitas models, one exported decoder per layer type, structure errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils import parametrize

from vitfpga.quant.export import export_linears
from vitfpga.quant.lowrank import factorise
from vitfpga.quant.model import ViT, ViTConfig, linear_shapes
from vitfpga.quant.qat import float_vit, quant_vit
from vitfpga.quant.shared import (
    ENCODERS,
    attach_encoders,
    drop_encoders,
    encode_stats,
    layer_inputs,
    shared_factorise,
    shared_init,
)
from vitfpga.quant.structure import LAYER_TYPES, SlotSpec, Structure, layer_type

torch.set_num_threads(1)  # the machine is shared; these models are tiny anyway

CFG = ViTConfig()  # dim 32, hidden 64, depth 3


def _structure(cfg: ViTConfig, rank: int, bits: int = 8, shared: tuple[str, ...] = LAYER_TYPES,
               lone: tuple[str, ...] = ()) -> Structure:
    """`shared` types get a shared decoder, `lone` types per-block low rank, the rest dense."""
    def spec(slot: str) -> SlotSpec:
        kind = layer_type(slot)
        if kind in shared:
            return SlotSpec(bits=bits, rank=rank, shared=True)
        return SlotSpec(bits=bits, rank=rank) if kind in lone else SlotSpec(bits=bits)
    return {name: spec(name) for name, _, _, _ in linear_shapes(cfg)}


def _teacher(cfg: ViTConfig = CFG, seed: int = 0) -> ViT:
    torch.manual_seed(seed)
    return ViT(cfg).eval()


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _effective(model: ViT, slot: str) -> torch.Tensor:
    f = model.get_submodule(slot)
    return f.v.weight @ f.u.weight


def _correlated(rows: int, k: int, seed: int, draw: int) -> np.ndarray:
    """Activations with a few dominant directions and uneven channel scales, as in ViTs."""
    dist = np.random.default_rng(seed)
    basis, scales = dist.normal(size=(4, k)), dist.uniform(0.1, 5.0, size=k)
    rng = np.random.default_rng([seed, draw])
    return (rng.normal(size=(rows, 4)) @ basis + 0.05 * rng.normal(size=(rows, k))) * scales


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), dim=st.sampled_from([8, 16]), depth=st.integers(1, 3),
       mlp_ratio=st.integers(1, 3))
def test_full_rank_init_of_identical_blocks_is_exact(seed: int, dim: int, depth: int,
                                                     mlp_ratio: int) -> None:
    cfg = ViTConfig(dim=dim, depth=depth, heads=2, mlp_ratio=mlp_ratio)
    teacher = _teacher(cfg, seed)
    with torch.no_grad():  # same weights in every block; biases and norms stay per block
        for name, _, _, _ in linear_shapes(cfg):
            if layer_type(name) is not None:
                first = teacher.get_submodule(f"blocks.0.{name.split('.', 2)[2]}")
                teacher.get_submodule(name).weight.copy_(first.weight)
    model = shared_init(teacher, _structure(cfg, rank=dim)).eval()  # min(K, N) is dim here
    for name, _, _, _ in linear_shapes(cfg):
        if layer_type(name):
            ref = teacher.get_submodule(name).weight
            assert torch.allclose(_effective(model, name), ref, atol=1e-5)
    x = _images(4, seed)
    assert torch.allclose(model(x), teacher(x), atol=1e-4)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), blocks=st.integers(1, 4), k=st.integers(2, 8),
       n=st.integers(2, 12), aware=st.booleans())
def test_full_stacked_rank_is_exact_and_codes_are_least_squares(seed: int, blocks: int, k: int,
                                                                 n: int, aware: bool) -> None:
    rng = np.random.default_rng(seed)
    ws = [rng.normal(size=(n, k)) for _ in range(blocks)]
    xs = [rng.normal(size=(3 * k, k)) * rng.uniform(0.1, 3.0, size=k) for _ in ws]
    fac = shared_factorise(ws, min(n, blocks * k), xs if aware else None)
    codes = np.split(fac.a, blocks)
    for w, z in zip(ws, codes, strict=True):
        assert np.allclose(z @ fac.b, w.T, atol=1e-6)
    # At a lower rank, each block's codes are still its least-squares codes given D_t, with the
    # activation-aware objective too: whitening does not change them.
    low = shared_factorise(ws, 1, xs if aware else None)
    for w, x, z in zip(ws, xs, np.split(low.a, blocks), strict=True):
        target = x @ w.T @ low.b.T  # X·Z·D = X·Wᵀ projected on D's row space
        assert np.allclose(z, np.linalg.lstsq(x, target, rcond=None)[0], atol=1e-6)


def test_activation_aware_decoder_beats_plain_on_held_out_outputs() -> None:
    rng = np.random.default_rng(7)
    ws = [rng.normal(size=(24, 16)) for _ in range(3)]
    cal = [_correlated(256, 16, seed=i, draw=0) for i in range(3)]
    test = [_correlated(256, 16, seed=i, draw=1) for i in range(3)]

    def error(fac) -> float:  # summed relative output error over the blocks
        return sum(np.linalg.norm(x @ (w.T - z @ fac.b)) / np.linalg.norm(x @ w.T)
                   for w, x, z in zip(ws, test, np.split(fac.a, 3), strict=True))

    for rank in (2, 4, 8):
        assert error(shared_factorise(ws, rank, cal)) < error(shared_factorise(ws, rank))


def test_activation_aware_init_beats_plain_on_a_vit() -> None:
    teacher = _teacher()
    structure = _structure(CFG, rank=4)
    slots = [s for s in structure if layer_type(s)]
    plain = shared_init(teacher, structure)
    aware = shared_init(teacher, structure, layer_inputs(teacher, _images(64, 0), slots))
    held_out = layer_inputs(teacher, _images(64, 1), slots)

    @torch.no_grad()
    def error(model: ViT) -> float:
        total = 0.0
        for s in slots:
            x, w = torch.from_numpy(held_out[s]).float(), teacher.get_submodule(s).weight
            total += float((x @ (w - _effective(model, s)).T).norm() / (x @ w.T).norm())
        return total

    assert error(aware) < error(plain)
    x = _images(32, 2)  # whole-model output error follows
    with torch.no_grad():
        ref = teacher(x)
        assert (aware.eval()(x) - ref).norm() < (plain.eval()(x) - ref).norm()


def test_mixed_structure_takes_lone_factored_slots_from_the_given_model() -> None:
    teacher = _teacher()
    structure = _structure(CFG, rank=4, shared=("qkv", "fc1"), lone=("proj",))
    factored = float_vit(CFG, structure)
    with torch.no_grad():
        for b in range(CFG.depth):
            slot = f"blocks.{b}.attn.proj"
            fac = factorise(teacher.get_submodule(slot).weight.numpy(), 4)
            factored.get_submodule(f"{slot}.u").weight.copy_(torch.from_numpy(fac.a.T))
            factored.get_submodule(f"{slot}.v").weight.copy_(torch.from_numpy(fac.b.T))
    with pytest.raises(ValueError, match="factored but not shared"):
        shared_init(teacher, structure)
    with pytest.raises(ValueError, match=r"`factored` has no blocks\.0\.attn\.proj\.u\.weight"):
        shared_init(teacher, structure, factored=teacher)
    model = shared_init(teacher, structure, factored=factored)
    for key, value in model.state_dict().items():
        if ".attn.proj." in key:
            assert torch.equal(value, factored.state_dict()[key]), key
        elif ".qkv." not in key and ".fc1." not in key:  # dense slots and non-linear parameters
            assert torch.equal(value, teacher.state_dict()[key]), key
    assert model.blocks[0].attn.qkv.v.weight is model.blocks[2].attn.qkv.v.weight


def test_quantised_decoders_export_as_one_integer_array_per_type() -> None:
    structure = _structure(CFG, rank=8, bits=4)
    student = quant_vit(CFG, shared_init(_teacher(), structure), structure)
    student.train()
    with torch.no_grad():
        for i in range(3):  # activation quantisers collect their statistics
            student(_images(16, i))
    layers = export_linears(student)
    for kind in LAYER_TYPES:
        slots = [s for s in structure if layer_type(s) == kind]
        first = layers[f"{slots[0]}.v"]
        assert first.weight_bits == 4
        for s in slots[1:]:
            assert np.array_equal(layers[f"{s}.v"].weight, first.weight)
            assert np.array_equal(layers[f"{s}.v"].w_scale, first.w_scale)
            assert not np.array_equal(layers[f"{s}.u"].weight, layers[f"{slots[0]}.u"].weight)


@pytest.mark.parametrize("kind", ["float", "brevitas"])
def test_attach_train_drop_round_trip(kind: str) -> None:
    teacher = _teacher()
    structure = _structure(CFG, rank=6, bits=4)
    model = shared_init(teacher, structure)
    if kind == "brevitas":
        model = quant_vit(CFG, model, structure)
    x, y = _images(32, 0), torch.arange(32) % 10
    before = model.eval()(x)
    encoders = attach_encoders(model, structure, teacher)
    assert torch.allclose(model(x), before, atol=1e-5)  # the encoder reproduces the init codes
    params = {id(p) for p in model.parameters() if p.requires_grad}
    assert all(id(p) in params for p in encoders.parameters())
    u = model.blocks[1].mlp.fc2.u
    source = u.parametrizations.weight.original
    assert id(source) not in params and torch.equal(source, teacher.blocks[1].mlp.fc2.weight)
    if kind == "brevitas":  # the weight quantiser sees the encoded tensor
        qw, w = u.quant_weight(), u.weight
        scale = w.abs().amax(dim=1) / 7  # 4-bit narrow range, per output channel
        assert torch.allclose(qw.scale.reshape(-1), scale)
        assert torch.allclose(qw.value, (w / scale[:, None]).round() * scale[:, None])
    enc0 = {k: e.weight.detach().clone() for k, e in encoders.items()}
    codes0 = u.weight.detach().clone()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(3):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(not torch.equal(e.weight, enc0[k]) for k, e in encoders.items())
    assert not torch.equal(u.weight, codes0)
    assert torch.equal(source, teacher.blocks[1].mlp.fc2.weight)  # W_l is frozen
    attached = model.eval()(x)

    drop_encoders(model)
    assert torch.equal(model(x), attached)
    assert not hasattr(model, ENCODERS)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert u.weight.requires_grad and any(p is u.weight for p in model.parameters())
    fresh = float_vit(CFG, structure)
    state = model.state_dict()
    # The structure's names exactly (Brevitas adds its quantisers' own state).
    assert {k for k in state if ".input_quant." not in k and ".output_quant." not in k} == set(
        fresh.state_dict())
    if kind == "brevitas":
        fresh = quant_vit(CFG, fresh, structure)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.eval()(x), attached)


def test_encode_stats_counts_codes_once_per_block_and_the_decoder_once() -> None:
    structure = _structure(CFG, rank=8, bits=4, shared=("qkv", "fc2"))
    stats = encode_stats(shared_init(_teacher(), structure), structure)
    assert set(stats) == {"qkv", "fc2"}
    assert stats["qkv"] == {
        "rank": 8, "blocks": 3, "tied": True, "code_params": 3 * 32 * 8,
        "decoder_params": 96 * 8, "dense_params": 3 * 96 * 32, "code_bits": 4,
        "decoder_bits": 4, "weight_bits": 4 * (3 * 32 * 8 + 96 * 8),
        "dense_fp32_bits": 32 * 3 * 96 * 32}
    assert stats["fc2"]["code_params"] == 3 * 64 * 8 and stats["fc2"]["decoder_params"] == 32 * 8


def _edit(structure: Structure, slot: str, spec: SlotSpec) -> Structure:
    return {**structure, slot: spec}


BASE = _structure(CFG, rank=4)
BAD: list[tuple[Structure, str]] = [
    ({s: SlotSpec(rank=33, shared=True) if layer_type(s) == "proj" else v
      for s, v in BASE.items()}, r"proj: shared rank 33 is outside 1\.\.32"),
    ({s: SlotSpec(rank=97, shared=True) if layer_type(s) == "qkv" else v
      for s, v in BASE.items()}, r"qkv: shared rank 97 is outside 1\.\.96"),
    (_edit(BASE, "head", SlotSpec(rank=4, shared=True)), "needs a block layer"),
    (_edit(BASE, "blocks.1.mlp.fc1", SlotSpec(shared=True)), r"needs rank > 0"),
    (_edit(BASE, "blocks.1.mlp.fc1", SlotSpec(rank=4, shared=True, sparse=True)), "sparse"),
    (_edit(BASE, "blocks.1.mlp.fc1", SlotSpec(rank=4, shared=True, v_bits=4)), "one rank"),
    ({s: v for s, v in BASE.items() if s != "head"}, r"missing \['head'\]"),
]


@pytest.mark.parametrize(("structure", "match"), BAD)
def test_bad_structures_raise_one_line_errors(structure: Structure, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        shared_init(_teacher(), structure)
    assert "\n" not in str(err.value)


def test_misuse_raises_one_line_errors() -> None:
    teacher = _teacher()
    dense = _structure(CFG, rank=4, shared=())
    model = shared_init(teacher, BASE)
    cases = [
        (lambda: shared_init(teacher, BASE, calib={}), "calib has no inputs for blocks.0"),
        (lambda: attach_encoders(float_vit(CFG, dense), dense, teacher), "nothing to encode"),
        (lambda: drop_encoders(model), "no encoders are attached"),
        (lambda: attach_encoders(model, BASE, {}), "no weight for blocks.0.attn.qkv"),
        (lambda: attach_encoders(model, BASE, model), "not a dense linear layer"),
        (lambda: attach_encoders(model, BASE, {s: torch.zeros(3, 32) for s in BASE}),
         r"qkv: source weights must be 96x32"),
        (lambda: shared_factorise([np.ones((4, 3)), np.ones((4, 2))], 1), "must all be 4x3"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match) as err:
            call()
        assert "\n" not in str(err.value)
    attach_encoders(model, BASE, teacher)
    with pytest.raises(ValueError, match="already attached"):
        attach_encoders(model, BASE, teacher)
