"""PYNQ driver of a vitfpga design. Two designs have the same ports and registers:
- the host-offload engine: the ViT's linear layers on the FPGA, the rest on the ARM core;
- the whole model (`vitfpga generate --whole`): every op on the FPGA, patches in, logits out.

Copied verbatim into every generated driver package; everything model- or board-specific comes
from `hw.json` beside it (written by `vitfpga generate` from the same plan as the bitstream).
The host-side integer ops (LayerNorm, softmax, GELU, residual adds, attention products; for the
whole model only the image quantisation) are the integer golden's own code in `runtime/`, numpy
only, so a board needs no torch.

    from vitfpga_vit_digits import Accelerator
    acc = Accelerator()                      # loads overlay/<design>.bit and the weight RAM
    labels, logits = acc.predict(images)     # (B, C, H, W) float images as in training

`backend` replaces the `pynq` module (it needs `Overlay` and `allocate` only). On a host,
pynq 4.0's PYNQ.remote runs this same file against a board over the network
(`PYNQ_REMOTE_DEVICES=<board ip>`), or against `vitfpga board-sim`, the project's RTL behind a
simulated board.

Supported PYNQ images: 2.7, 3.0, 3.1 and 4.0 (SUPPORTED_PYNQ); the driver refuses older ones.
"""

from __future__ import annotations

import importlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import runtime

__all__ = ["HERE", "SUPPORTED_PYNQ", "Accelerator", "EngineError", "check_pynq"]

HERE = Path(__file__).resolve().parent
AP_START, AP_DONE = 0x1, 0x2
DONE_TIMEOUT_S = 10.0  # a layer takes microseconds; ten seconds means the engine hung
# PYNQ releases this driver is written and tested for: the APIs it uses (Overlay, allocate,
# DefaultIP read/write, the AXI DMA driver's simple mode) are the same in all of them.
SUPPORTED_PYNQ = ("2.7", "3.0", "3.1", "4.0")
LED_READY, LED_BUSY = 0x1, 0x2  # the `leds` GPIO: overlay loaded and ready; a run in progress


class EngineError(RuntimeError):
    """The engine or its DMA did not behave: the bitstream does not match this driver, or hung."""


def check_pynq(module: Any) -> str:
    """The pynq module's version, refused when older than the oldest supported release."""
    version = str(getattr(module, "__version__", "0"))
    try:
        release = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        release = (0, 0)
    oldest = tuple(int(p) for p in SUPPORTED_PYNQ[0].split("."))
    if release < oldest:
        raise EngineError(f"pynq {version} is too old for this driver: it supports PYNQ "
                          f"{', '.join(SUPPORTED_PYNQ)}")
    if ".".join(map(str, release)) not in SUPPORTED_PYNQ:
        warnings.warn(f"pynq {version} is newer than the releases this driver was tested "
                      f"with ({', '.join(SUPPORTED_PYNQ)})", stacklevel=3)
    return version


class Accelerator:
    """One engine behind one AXI DMA: `run_layer` for a single linear layer, `predict` for
    whole images. Buffers are allocated once and grown on demand."""

    def __init__(self, bitfile: str | None = None, backend: Any = None,
                 model: str | None = None, batch: int = 64) -> None:
        self.hw: dict[str, Any] = json.loads((HERE / "hw.json").read_text())
        if backend is None:
            backend = importlib.import_module("pynq")
            check_pynq(backend)
        self.bitfile = Path(bitfile) if bitfile else HERE / "overlay" / (self.hw["design"]
                                                                         + ".bit")
        self.overlay = backend.Overlay(str(self.bitfile))
        self._allocate: Callable[..., Any] = backend.allocate
        self.engine = getattr(self.overlay, self.hw["engine_cell"])
        self.dma = getattr(self.overlay, self.hw["dma_cell"])
        self.regs: dict[str, int] = self.hw["registers"]
        self.layers: dict[str, dict[str, int]] = {s["name"]: s for s in self.hw["layers"]}
        self.model = runtime.load_model(str(model or HERE / "model.npz"))
        self.whole: dict[str, int] | None = self.hw.get("whole")
        self.batch = batch
        self.cycles = 0  # engine clock cycles of every run so far (its own `cycles` register)
        self.runs = 0
        self._buffers: dict[str, Any] = {}
        # The GPIO the block design has for the board's LEDs (absent in older bitstreams).
        self.leds = getattr(self.overlay, self.hw.get("gpio_cell", ""), None)
        self.load_weights()
        self._set_leds(LED_READY)

    def _set_leds(self, value: int) -> None:
        if self.leds is not None:
            self.leds.write(0x0, value)

    # ---- buffers and registers ---------------------------------------------------------------
    def _buffer(self, key: str, nbytes: int) -> Any:
        buf = self._buffers.get(key)
        if buf is None or buf.shape[0] < nbytes:
            if buf is not None:
                buf.freebuffer()
            buf = self._buffers[key] = self._allocate(shape=(nbytes,), dtype=np.uint8)
        return buf

    def _wait_done(self, what: str) -> int:
        deadline = time.monotonic() + DONE_TIMEOUT_S
        while not self.engine.read(self.regs["ctrl"]) & AP_DONE:
            if time.monotonic() > deadline:
                raise EngineError(f"{what}: the engine never signalled done")
        cycles = int(self.engine.read(self.regs["cycles"]))
        self.cycles += cycles
        self.runs += 1
        return cycles

    def _send(self, data: np.ndarray) -> Any:
        buf = self._buffer("in", data.size)
        buf[:data.size] = data
        buf.flush()
        return buf

    # ---- weight load (docs/engine.md) ------------------------------------------------------------
    def load_weights(self) -> None:
        """Stream the weight words the bitstream cannot hold (URAM powers up empty) into the
        engine's RAM. Done once after the overlay loads, before the first inference."""
        words = int(self.hw["ram_words"])
        if words == 0:
            return
        data = np.fromfile(str(HERE / "weights_ram.bin"), dtype=np.uint8)
        if data.size != words * int(self.hw["ram_bytes_per_word"]):
            raise EngineError(f"weights_ram.bin holds {data.size} bytes, hw.json expects "
                              f"{words} words of {self.hw['ram_bytes_per_word']} bytes")
        self.engine.write(self.regs["mode"], 1)
        try:
            self.engine.write(self.regs["rows"], words)
            buf = self._send(data)
            self.dma.sendchannel.transfer(buf, nbytes=data.size)
            self.engine.write(self.regs["ctrl"], AP_START)
            self.dma.sendchannel.wait()
            self._wait_done("weight load")
        finally:
            self.engine.write(self.regs["mode"], 0)

    # ---- one linear layer --------------------------------------------------------------------
    def run_layer(self, name: str, rows: np.ndarray) -> np.ndarray:
        """int8 rows (M, K) through layer `name` on the engine -> int8 rows (M, N) as int64."""
        if self.whole is not None:
            raise EngineError("this bitstream is the whole-model design: it runs whole images "
                              "(predict, logits), not single layers")
        spec = self.layers.get(name)
        if spec is None:
            raise KeyError(f"no layer {name!r} in this engine; it runs {', '.join(self.layers)}")
        x = np.asarray(rows)
        if x.ndim != 2 or x.shape[1] != spec["k"]:
            raise ValueError(f"{name}: expected rows of shape (M, {spec['k']}), got {x.shape}")
        if x.size and (x.min() < -128 or x.max() > 127):
            raise ValueError(f"{name}: input values outside int8")
        # A row is `beats` input beats: SF for dense layers, SF*R for N:M ones (docs/engine.md).
        in_width = spec["beats"] * self.hw["simd"]
        out_width = spec["nf"] * self.hw["pe"]
        # Keep each DMA transfer within the length register (hw.json max_transfer bytes).
        step = max(1, int(self.hw["max_transfer"]) // max(in_width, out_width))
        out = [self._run_rows(spec, x[i:i + step], in_width, out_width)
               for i in range(0, x.shape[0], step)]
        return np.concatenate(out)[:, :spec["n"]] if out else np.zeros((0, spec["n"]), np.int64)

    def _run_rows(self, spec: dict[str, int], x: np.ndarray, in_width: int,
                  out_width: int) -> np.ndarray:
        m = x.shape[0]
        padded = np.zeros((m, in_width), dtype=np.int8)  # padding lanes meet zero weights
        padded[:, :spec["k"]] = x
        self.engine.write(self.regs["layer"], spec["index"])
        y = self._stream(padded, m, m * out_width, spec["name"])
        return y.reshape(m, out_width).astype(np.int64)

    def _stream(self, data: np.ndarray, rows: int, out_bytes: int, what: str) -> np.ndarray:
        """One start: `rows` (layer rows, or images for the whole model) in from the int8
        array `data`, `out_bytes` int8 values back."""
        send = self._send(data.view(np.uint8).reshape(-1))
        recv = self._buffer("out", out_bytes)
        self.engine.write(self.regs["rows"], rows)
        self._set_leds(LED_READY | LED_BUSY)
        self.dma.recvchannel.transfer(recv, nbytes=out_bytes)
        self.dma.sendchannel.transfer(send, nbytes=data.size)
        self.engine.write(self.regs["ctrl"], AP_START)
        self.dma.sendchannel.wait()
        self.dma.recvchannel.wait()
        self._wait_done(what)
        self._set_leds(LED_READY)
        recv.invalidate()
        return np.array(recv[:out_bytes]).view(np.int8)

    # ---- whole images ------------------------------------------------------------------------
    def logits(self, images: np.ndarray) -> np.ndarray:
        """(B, C, H, W) float images -> (B, classes) int64 logits, every linear layer on the
        engine, batches of `self.batch` images."""
        self._need_model()
        images = np.asarray(images, dtype=np.float32)
        run = self._offload_images if self.whole is None else self._whole_images
        parts = [run(images[i:i + self.batch]) for i in range(0, images.shape[0], self.batch)]
        return np.concatenate(parts)

    def _offload_images(self, images: np.ndarray) -> np.ndarray:
        return runtime.logits(self.model, images, linear=self.run_layer)

    def _whole_images(self, images: np.ndarray) -> np.ndarray:
        """The whole-model design: one start classifies the batch (`rows` = images). In: each
        image's int8 patch rows zero-padded to whole beats; out: `out_beats` beats an image,
        the logits in the first lanes (docs/vit.md)."""
        assert self.whole is not None
        q = runtime.quantise_images(images, self.model.spec.patch_size,
                                    self.model.input_scale())
        count, patches, k = q.shape
        row = int(self.whole["row_beats"]) * int(self.hw["simd"])
        in_bytes = patches * row
        out_bytes = int(self.whole["out_beats"]) * int(self.hw["pe"])
        step = max(1, int(self.hw["max_transfer"]) // max(in_bytes, out_bytes))
        out = []
        for i in range(0, count, step):
            m = min(step, count - i)
            padded = np.zeros((m, patches, row), dtype=np.int8)
            padded[:, :, :k] = q[i:i + m]
            y = self._stream(padded, m, m * out_bytes, f"{m} images").reshape(m, out_bytes)
            out.append(y[:, :self.model.spec.num_classes].astype(np.int64))
        return np.concatenate(out)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels, logits) of (B, C, H, W) float images."""
        logits = self.logits(images)
        return logits.argmax(axis=1), logits

    def golden(self, images: np.ndarray) -> np.ndarray:
        """The same logits computed on the CPU alone (the integer golden): a self-check."""
        self._need_model()
        return runtime.logits(self.model, np.asarray(images, dtype=np.float32))

    def _need_model(self) -> None:
        if not self.model.params:
            raise EngineError("this package was generated from a hardware preset (seeded random "
                              "weights, not a trained model): it runs single layers only")

    def close(self) -> None:
        for buf in self._buffers.values():
            buf.freebuffer()
        self._buffers.clear()

    def __enter__(self) -> Accelerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
