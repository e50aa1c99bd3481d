"""`vitfpga.runtime`: the integer model contract (spec, layers, save/load with validation) and
the numpy-only integer forward pass that vitfpga's golden and the PYNQ driver share. Relocatable
(copied into another package, imported with torch unavailable), Python 3.8 syntax, bit-exact
with big-integer references of its ops."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import small_int_model
from tests.quant.test_intvit import _drop_head
from vitfpga import runtime
from vitfpga.ir import IntModel, ModelSpec
from vitfpga.quant import intops as iop
from vitfpga.quant.data import Split, load_digits_split
from vitfpga.quant.export import export_linears
from vitfpga.quant.intvit import calibrate_int_vit
from vitfpga.quant.model import PRESETS, linear_shapes
from vitfpga.quant.model import patchify as torch_patchify
from vitfpga.quant.qat import float_vit, quant_vit
from vitfpga.quant.structure import SlotSpec, dense_structure
from vitfpga.quant.train import train
from vitfpga.runtime import forward, intmath
from vitfpga.runtime import model as rt_model

torch.set_num_threads(1)
CFG = PRESETS["vit-digits"]
RUNTIME_DIR = Path(runtime.__file__).resolve().parent
MODULES = sorted(RUNTIME_DIR.glob("*.py"))


@pytest.fixture(scope="module")
def split() -> Split:
    return load_digits_split()


@pytest.fixture(scope="module")
def model(split: Split) -> IntModel:
    """A briefly trained model with every forward path: factored fc1 (u, v, sparse s and the
    `.sum` add), fc2 with a decoder shared by every block (hops between u and v), and one head
    of block 1 pruned by hand. Accuracy does not matter here, only exactness."""
    structure = dense_structure(CFG, 4)
    for b in range(CFG.depth):
        structure[f"blocks.{b}.mlp.fc1"] = SlotSpec(bits=4, rank=8, sparse=True)
        structure[f"blocks.{b}.mlp.fc2"] = SlotSpec(bits=4, rank=8, v_bits=8, shared=True)
    torch.manual_seed(0)
    teacher = train(float_vit(CFG, structure), split, epochs=2, lr=3e-3, seed=0)
    student = train(quant_vit(CFG, teacher, structure), split, epochs=1, lr=1e-3, seed=0,
                    teacher=teacher, kd_weight=0.5)
    built = calibrate_int_vit(student, export_linears(student), split.x_train)
    hd = CFG.dim // CFG.heads
    return dataclasses.replace(built, layers=_drop_head(built.layers, 1, 2, hd))


@pytest.fixture(scope="module")
def model_file(model: IntModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model.save(str(path))
    return path


def test_fixture_covers_every_path(model: IntModel) -> None:
    assert any(k.startswith("hop.") for k in model.params)
    assert "blocks.0.mlp.fc1.sum" in model.params and "blocks.0.mlp.fc1.s" in model.layers
    assert model.layers["blocks.1.attn.qkv"].n == 3 * (CFG.dim - CFG.dim // CFG.heads)


# ---- the contract: spec, save and load ----------------------------------------------------

def test_load_model_round_trips_save(model: IntModel, model_file: Path) -> None:
    back = runtime.load_model(str(model_file))
    assert back.spec == model.spec == CFG.spec() and back.scales == model.scales
    assert list(back.layers) == list(model.layers) and set(back.params) == set(model.params)
    for name, layer in model.layers.items():
        got = back.layers[name]
        assert (got.name, got.k, got.n, got.relu, got.rows, got.codec, got.weight_bits) == (
            name, layer.k, layer.n, layer.relu, layer.rows, layer.codec, layer.weight_bits)
        assert (got.in_scale, got.out_scale) == (layer.in_scale, layer.out_scale)
        for field in ("weight", "bias", "multiplier", "shift"):
            assert getattr(got, field).dtype == np.int64
            assert np.array_equal(getattr(got, field), getattr(layer, field))
        assert got.w_scale.dtype == np.float64 and np.array_equal(got.w_scale, layer.w_scale)
    assert all(np.array_equal(back.params[k], a) for k, a in model.params.items())
    assert back.input_scale() == model.layers["patch_embed"].in_scale
    assert back.res_bits == int(model.params["meta"][0])
    assert back.rows()["patch_embed"] == CFG.num_patches and back.rows()["head"] == 1
    assert back.rows()["blocks.2.mlp.fc2.v"] == CFG.tokens


def test_save_is_deterministic(model: IntModel, model_file: Path, tmp_path: Path) -> None:
    runtime.load_model(str(model_file)).save(str(tmp_path / "again.npz"))
    assert (tmp_path / "again.npz").read_bytes() == model_file.read_bytes()


def test_spec_matches_the_torch_config() -> None:
    spec = CFG.spec()
    assert (spec.patches, spec.tokens, spec.patch_dim, spec.head_dim, spec.mlp_hidden) == (
        CFG.num_patches, CFG.tokens, CFG.patch_dim, CFG.dim // CFG.heads, CFG.hidden)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.slots() == [(name, rows) for name, _, _, rows in linear_shapes(CFG)]
    with pytest.raises(ValueError, match=r"spec: unknown field\(s\) mlp_ratio"):
        ModelSpec.from_dict({**spec.to_dict(), "mlp_ratio": 2})
    with pytest.raises(ValueError, match=r"spec: .*mlp_hidden"):
        ModelSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "mlp_hidden"})


# ---- the forward pass ---------------------------------------------------------------------

def test_saved_model_computes_what_the_built_one_does(model: IntModel, model_file: Path,
                                                      split: Split) -> None:
    x = split.x_test[:64].numpy()
    want = runtime.logits(model, x)
    assert want.dtype == np.int64 and want.shape == (64, CFG.num_classes)
    rec: dict[str, list[np.ndarray]] = {}
    got = runtime.logits(runtime.load_model(str(model_file)), x, record=rec)
    assert np.array_equal(got, want)
    assert set(rec) == set(model.layers)
    assert all(len(rows) == 1 and rows[0].dtype == np.int8 for rows in rec.values())
    assert rec["patch_embed"][0].shape == (64 * CFG.num_patches, CFG.patch_dim)
    # the head's recorded input replays to the logits through the layer alone
    assert np.array_equal(runtime.linear_golden(rec["head"][0], model.layers["head"]), got)


def test_linear_callback_sees_int64_rows_of_every_layer(model: IntModel, split: Split) -> None:
    calls: list[str] = []

    def linear(name: str, rows: np.ndarray) -> np.ndarray:
        calls.append(name)
        assert rows.dtype == np.int64 and rows.shape[1] == model.layers[name].k
        assert rows.min() >= -128 and rows.max() <= 127
        return runtime.linear_golden(rows, model.layers[name]).astype(np.int8)  # any int dtype

    x = split.x_test[:10].numpy()
    assert np.array_equal(runtime.logits(model, x, linear=linear), runtime.logits(model, x))
    assert sorted(calls) == sorted(model.layers)

    def short(name: str, rows: np.ndarray) -> np.ndarray:
        return runtime.linear_golden(rows, model.layers[name])[:, :-1]

    with pytest.raises(ValueError, match=r"patch_embed: the linear backend returned shape"):
        runtime.logits(model, x, linear=short)


@pytest.mark.parametrize(("field", "value"), [("pool", "max"), ("gelu", "relu")])
def test_forward_refuses_what_it_does_not_compute(model: IntModel, field: str,
                                                  value: str) -> None:
    other = dataclasses.replace(model, spec=dataclasses.replace(model.spec, **{field: value}))
    with pytest.raises(ValueError, match=rf"spec {field} '{value}': expected one of"):
        runtime.logits(other, np.zeros((1, 1, 8, 8), np.float32))


def test_patchify_and_quantise_are_the_torch_steps() -> None:
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 12, 12, generator=gen) * 4
    assert np.array_equal(runtime.patchify(images.numpy(), 4), torch_patchify(images, 4).numpy())
    scale = 0.037
    # values exactly halfway between two steps (in float32) and beyond the int8 range
    halves = (torch.arange(-140, 140, dtype=torch.float32) + 0.5) * torch.tensor(scale)
    images = torch.cat([images.reshape(-1), halves])[:3 * 3 * 12 * 12].reshape(3, 3, 12, 12)
    for s in (scale, 0.01, 1 / 3):
        want = torch.round(torch_patchify(images, 4) / torch.tensor(s, dtype=torch.float32))
        want = want.clamp(-128, 127).to(torch.int64).numpy()
        got = runtime.quantise_images(images.numpy(), 4, s)
        assert got.dtype == np.int64 and np.array_equal(got, want)
    float64 = runtime.quantise_images(images.double().numpy(), 4, scale)  # float32 first
    assert np.array_equal(float64, runtime.quantise_images(images.numpy(), 4, scale))


def test_identity_and_tables_are_vitfpga_s() -> None:
    assert iop.rescale_params(1.0) == forward.IDENTITY
    assert np.array_equal(intmath.EXP2_LUT, iop.EXP2_LUT) and iop.int_add is intmath.int_add


# ---- relocatable, numpy only, Python 3.8 ------------------------------------------------------

_CHILD = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None  # importing torch now fails
    sys.modules["vitfpga"] = None
    root, numpy_dir, model_path, images_path = sys.argv[1:5]
    sys.path[:] = [root] + sys.path + [numpy_dir]  # -I -S: the standard library only
    import json
    import numpy as np
    import somepkg.runtime as rt
    model = rt.load_model(model_path)
    images = np.load(images_path)
    calls = []
    def linear(name, rows):
        calls.append(name)
        return rt.linear_golden(rows, model.layers[name])
    out = rt.logits(model, images)
    assert np.array_equal(rt.logits(model, images, linear=linear), out)
    assert sorted(set(calls)) == sorted(model.layers)
    loaded = [m.__file__ for m in list(sys.modules.values())
              if getattr(m, "__file__", None) and m.__name__.startswith("somepkg")]
    assert loaded and all(f.startswith(root) for f in loaded), loaded
    assert not any(n.startswith(("vitfpga.", "torch.")) for n in sys.modules)
    print(json.dumps(out.tolist()))
""")


def test_relocated_copy_runs_without_torch(model: IntModel, model_file: Path, split: Split,
                                           tmp_path: Path) -> None:
    pkg = tmp_path / "somepkg"
    shutil.copytree(RUNTIME_DIR, pkg / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "__init__.py").write_text("")
    images = split.x_test[:40]
    np.save(tmp_path / "images.npy", images.numpy())
    numpy_dir = str(Path(np.__file__).resolve().parent.parent)
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _CHILD, str(tmp_path), numpy_dir, str(model_file),
         str(tmp_path / "images.npy")], capture_output=True, text=True, cwd=tmp_path,
        timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got == runtime.logits(model, images.numpy()).tolist() and len(got) == 40


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_py38_numpy_only(path: Path) -> None:
    src = path.read_text()
    tree = ast.parse(src, filename=str(path), feature_version=(3, 8))
    allowed = set(sys.stdlib_module_names) | {"numpy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            tops = [(node.module or "").split(".")[0]]
        else:
            continue
        assert set(tops) <= allowed, f"{path.name}:{node.lineno} imports {tops}"
    first = next(n for n in tree.body if not (isinstance(n, ast.Expr)
                                             and isinstance(n.value, ast.Constant)))
    assert isinstance(first, ast.ImportFrom) and first.module == "__future__", (
        f"{path.name}: `from __future__ import annotations` must come first (3.8 annotations)")
    names = [n for n in tree.body if isinstance(n, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
    assert names, f"{path.name}: no __all__"
    for bad in ("removeprefix", "removesuffix", "strict=", "match ", "functools.cache("):
        assert bad not in src, f"{path.name}: {bad!r} is not Python 3.8"


def test_every_exported_name_exists() -> None:
    for mod in (runtime, intmath, forward, rt_model):
        assert all(hasattr(mod, name) for name in mod.__all__), mod.__name__
    assert {"IntLinear", "IntModel", "ModelSpec", "load_model", "linear_golden", "logits",
            "patchify", "quantise_images", "requant_params", "weight_owners",
            "ACC_LIMIT"} <= set(runtime.__all__)


# ---- load_model on files that are not models --------------------------------------------------

def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_load_model_rejects_what_is_not_a_model(model_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"not a zip archive at all, nor a .npy")
    with pytest.raises(ValueError, match=r"garbage\.npz: not an integer model file"):
        runtime.load_model(str(bad))
    cut = tmp_path / "truncated.npz"
    cut.write_bytes(model_file.read_bytes()[:3000])
    with pytest.raises(ValueError, match=r"truncated\.npz: not .*integer model file"):
        runtime.load_model(str(cut))
    other = _npz(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match=r"other\.npz: not a valid .*: missing __meta__"):
        runtime.load_model(str(other))
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"one array, not an archive"):
        runtime.load_model(str(tmp_path / "one.npy"))
    with pytest.raises(FileNotFoundError):
        runtime.load_model(str(tmp_path / "absent.npz"))


def _meta(arrays: dict[str, np.ndarray], **changes: object) -> np.ndarray:
    meta = json.loads(str(arrays["__meta__"].item()))
    meta.update(changes)
    return np.array(json.dumps(meta))


def test_load_model_names_what_is_wrong(model_file: Path, tmp_path: Path) -> None:
    with np.load(model_file) as data:
        arrays = {k: data[k] for k in data.files}
    no_shift = {k: a for k, a in arrays.items() if k != "layer::head::shift"}
    with pytest.raises(ValueError, match=r"layer head: missing shift"):
        runtime.load_model(str(_npz(tmp_path / "a.npz", **no_shift)))
    spec = json.loads(str(arrays["__meta__"].item()))["spec"]
    short = {**arrays, "__meta__": _meta(arrays, spec={k: v for k, v in spec.items()
                                                         if k != "depth"})}
    with pytest.raises(ValueError, match=r"spec: .*depth"):
        runtime.load_model(str(_npz(tmp_path / "b.npz", **short)))
    stray = {**arrays, "layer::nowhere::weight": np.zeros((2, 2), np.int64)}
    with pytest.raises(ValueError, match=r"'layer::nowhere::weight' names no layer"):
        runtime.load_model(str(_npz(tmp_path / "c.npz", **stray)))
    pickled = {**arrays, "param::x": np.array([{"a": 1}], dtype=object)}
    with pytest.raises(ValueError, match=r"d\.npz: not a valid integer model file"):
        runtime.load_model(str(_npz(tmp_path / "d.npz", **pickled)))
    float_weight = {**arrays, "layer::head::weight": arrays["layer::head::weight"] * 0.5}
    with pytest.raises(ValueError, match=r"layer head: weight is float64, not integer"):
        runtime.load_model(str(_npz(tmp_path / "e.npz", **float_weight)))
    old = {**arrays, "__meta__": _meta(arrays, format="vitfpga.int_model/0")}
    with pytest.raises(ValueError, match=r"format 'vitfpga.int_model/0', expected"):
        runtime.load_model(str(_npz(tmp_path / "f.npz", **old)))


# ---- validation when loaded: each rule names the layer (or field) and the value -------------

QKV = "blocks.0.attn.qkv"  # an int4 layer of `small_int_model`


def _poke(key: str, index: tuple[int, ...], value: int) -> dict[str, object]:
    def change(layer: rt_model.IntLinear) -> dict[str, object]:
        array = getattr(layer, key).copy()
        array[index] = value
        return {key: array}
    return change


BAD_LAYERS = [
    (_poke("weight", (3, 5), 127), r"weight 127 is outside int4's narrow range \[-7, 7\]"),
    (_poke("weight", (0, 0), -8), r"weight -8 is outside int4's narrow range \[-7, 7\]"),
    (lambda _: {"weight_bits": 5}, r"weight_bits 5 is not supported \(one of 2, 3, 4, 8\)"),
    (_poke("bias", (2,), 2**31), r"bias 2147483648 is outside int32"),
    (_poke("multiplier", (1,), 2**30 - 1), r"multiplier 1073741823 is outside \[2\^30, 2\^31\)"),
    (_poke("multiplier", (1,), 2**31), r"multiplier 2147483648 is outside \[2\^30, 2\^31\)"),
    (_poke("shift", (4,), 0), r"shift 0 is outside \[1, 62\]"),
    (_poke("shift", (4,), 63), r"shift 63 is outside \[1, 62\]"),
    (_poke("bias", (0,), 2**31 - 1), r"worst-case accumulator \d+ overflows int32"),
    (lambda _: {"codec": "zip"}, r"codec 'zip': unknown weight codec 'zip'; known codecs: dense"),
    (lambda _: {"rows": 0}, r"rows 0 is below 1"),
    (lambda _: {"rows": 16}, r"rows 16, but the spec gives blocks\.0\.attn\.qkv 17 rows"),
    (lambda layer: {"bias": layer.bias[:-1]}, r"bias has shape \(95,\), expected \(96,\)"),
    (lambda layer: {"weight": layer.weight[:, :-1]}, r"K 31, but the spec gives 32"),
]


@pytest.mark.parametrize(("change", "message"), BAD_LAYERS, ids=[m[:24] for _, m in BAD_LAYERS])
def test_load_refuses_a_bad_layer_naming_it_and_the_value(change, message: str,
                                                          tmp_path: Path) -> None:
    model = small_int_model(bits=4)
    model.save(str(tmp_path / "good.npz"))
    assert runtime.load_model(str(tmp_path / "good.npz")).layers[QKV].weight_bits == 4
    layer = model.layers[QKV]
    model.layers[QKV] = dataclasses.replace(layer, **change(layer))
    model.save(str(tmp_path / "bad.npz"))
    with pytest.raises(ValueError, match=rf"bad\.npz: layer {QKV}: {message}"):
        runtime.load_model(str(tmp_path / "bad.npz"))


def test_int8_weights_have_a_narrow_range_too(tmp_path: Path) -> None:
    model = small_int_model(bits=8)
    layer = model.layers["head"]
    weight = layer.weight.copy()
    weight[1, 2] = -128
    model.layers["head"] = dataclasses.replace(layer, weight=weight)
    with pytest.raises(ValueError, match=r"layer head: weight -128 is outside int8's narrow "
                                         r"range \[-127, 127\]"):
        model.validate()


BAD_SPECS = [
    ({"num_classes": 11}, r"layer head: N 10, but the spec gives 11"),
    ({"patch_size": 4}, r"layer patch_embed: rows 16, but the spec gives patch_embed 4 rows"),
    ({"depth": 2}, r"layer blocks\.2\.attn\.qkv: not a linear layer of the spec \(depth 2\)"),
    ({"depth": 4}, r"slot blocks\.3\.attn\.qkv: no dense layer"),
    ({"heads": 5}, r"spec dim 32 is not a multiple of heads 5"),
    ({"pool": "avg"},  # no class token: 16 tokens
     r"layer blocks\.0\.attn\.qkv: rows 17, but the spec gives blocks\.0\.attn\.qkv 16 rows"),
    ({"gelu": "relu"}, r"spec gelu 'relu': expected one of erf, tanh"),
    ({"ln_eps": 0.0}, r"spec ln_eps 0\.0: expected a positive number"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_SPECS, ids=[str(c) for c, _ in BAD_SPECS])
def test_load_refuses_a_spec_the_layers_or_the_hardware_do_not_fit(
        changes: dict[str, object], message: str, tmp_path: Path) -> None:
    model = small_int_model()
    bad = dataclasses.replace(model, spec=dataclasses.replace(model.spec, **changes))
    bad.save(str(tmp_path / "bad.npz"))
    with pytest.raises(ValueError, match=rf"bad\.npz: {message}"):
        runtime.load_model(str(tmp_path / "bad.npz"))


def test_a_layers_only_model_loads(tmp_path: Path) -> None:
    """What a preset's driver package carries: the layers, no host parameters."""
    model = small_int_model()
    IntModel(spec=model.spec, layers=model.layers, params={}, scales={}).save(
        str(tmp_path / "layers.npz"))
    back = runtime.load_model(str(tmp_path / "layers.npz"))
    assert back.params == {} and list(back.layers) == list(model.layers)


# ---- the engine contract and the ops against Python integers ---------------------------------

def test_linear_golden_refuses_bad_input_and_int32_overflow() -> None:
    layer = runtime.IntLinear("l", np.full((2, 3), 127), np.array([0, 2**31 - 1]),
                              np.full(2, 2**30), np.full(2, 31), False, 1.0, 1.0, np.ones(2), 8)
    with pytest.raises(ValueError, match=r"l: expected \(rows, 3\) int8 input, got \(2, 4\)"):
        runtime.linear_golden(np.zeros((2, 4)), layer)
    with pytest.raises(ValueError, match="outside int8"):
        runtime.linear_golden(np.full((1, 3), 128), layer)
    with pytest.raises(OverflowError, match="l: int32 accumulator overflow"):
        runtime.linear_golden(np.ones((1, 3)), layer)
    assert runtime.linear_golden(np.zeros((0, 3)), layer).shape == (0, 2)


def test_int_add_needs_one_pair_per_term() -> None:
    with pytest.raises(ValueError, match="2 terms but 3"):
        intmath.int_add([np.zeros(2), np.zeros(2)], np.ones((3, 2), np.int64), 8)


def _ln_reference(row: list[int], gamma: list[int], beta: list[int], meta: list[int]
                  ) -> list[int]:
    """int_layernorm's algorithm in Python integers (no width limits anywhere)."""
    mult, shift, eps = meta
    d, total = len(row), sum(row)
    xc = [d * x - total for x in row]
    v = sum(c * c for c in xc) + eps
    k = max((c for c in range(32) if v * 4**c < 2**62), default=0)
    root = max(math.isqrt(v << (2 * k)), 1)
    acc = [(c << (intmath.LN_FRAC_BITS + k)) // root * g + b
           for c, g, b in zip(xc, gamma, beta, strict=True)]
    return [max(-128, min(127, (a * mult + (1 << (shift - 1))) >> shift)) for a in acc]


def test_layernorm_shift_is_its_definition_at_every_power_of_four() -> None:
    """The leading-zero shift k itself. The outputs barely depend on it: the root keeps 30 or
    more significant bits where the quotient needs far fewer, so a k a few steps low changes
    no output a mutation run tried (docs/vit.md, Timing). No output test can pin it, so it is
    checked against its definition where it steps."""
    vs = [0, 1, 2, 3, *(4**j + d for j in range(1, 32) for d in (-1, 0, 1)), 2**63 - 1]
    want = [max((c for c in range(32) if v * 4**c < 2**62), default=0) for v in vs]
    assert intmath._norm_shift(np.array(vs, dtype=np.int64)).tolist() == want


def _softmax_reference(row: list[int], mult: int, shift: int, prob_max: int) -> list[int]:
    top = max(row)
    u = [(min(top - x, 2**32 - 1) * mult + (1 << (shift - 1))) >> shift for x in row]
    lut = intmath.EXP2_LUT.tolist()
    e = [lut[a & 255] >> min(a >> 8, 62) for a in u]
    recip = (1 << 40) // sum(e)
    return [(a * recip * prob_max + (1 << 39)) >> 40 for a in e]


@given(seed=st.integers(0, 2**31), dim=st.sampled_from([1, 4, 32, 192, 1024]),
       spread=st.integers(0, 2**15 - 1), s_in=st.floats(1e-5, 1.0),
       s_out=st.floats(1e-3, 0.5))
@settings(max_examples=60, deadline=None)
def test_layernorm_is_its_big_integer_reference(seed: int, dim: int, spread: int, s_in: float,
                                                s_out: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-spread - 1, spread + 1, size=(3, dim))
    x[0] = -(2**15) if seed % 2 else 2**15 - 1  # a constant row: only eps
    p = iop.layernorm_params(rng.normal(size=dim), rng.normal(size=dim) * 3, 1e-5, s_in, s_out)
    arrays = p.to_arrays()
    got = intmath.int_layernorm(x, **arrays)
    g, b, meta = (arrays[k].tolist() for k in ("gamma", "beta", "meta"))
    assert got.tolist() == [_ln_reference(row, g, b, meta) for row in x.tolist()]


@given(seed=st.integers(0, 2**31), tokens=st.integers(1, 300), gap_bits=st.integers(0, 40),
       scale=st.floats(1e-7, 1.0), prob_max=st.sampled_from([127, 255]))
@settings(max_examples=60, deadline=None)
def test_softmax_is_its_big_integer_reference(seed: int, tokens: int, gap_bits: int,
                                              scale: float, prob_max: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(-(2**gap_bits), 2**gap_bits + 1, size=(4, tokens))
    m, s = iop.softmax_params(scale)
    got = intmath.int_softmax(scores, m, s, prob_max=prob_max)
    assert got.tolist() == [_softmax_reference(r, m, s, prob_max) for r in scores.tolist()]
