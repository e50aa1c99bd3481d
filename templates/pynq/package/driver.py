"""PYNQ driver of a vitfpga engine: the ViT's linear layers on the FPGA, the rest on the ARM core.

Copied verbatim into every generated driver package; everything model- or board-specific comes
from `hw.json` beside it (written by `vitfpga generate` from the same plan as the bitstream).
The host-side integer ops (LayerNorm, softmax, GELU, residual adds, attention products) are the
integer golden's own code in `runtime/`, numpy only, so a board needs no torch.

    from vitfpga_vit_digits import Accelerator
    acc = Accelerator()                      # loads overlay/<design>.bit and the weight RAM
    labels, logits = acc.predict(images)     # (B, C, H, W) float images as in training

`backend` replaces the `pynq` module (it needs `Overlay` and `allocate` only): vitfpga's
simulated board runs this same file against the RTL simulation of the engine.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import runtime

__all__ = ["HERE", "Accelerator", "EngineError"]

HERE = Path(__file__).resolve().parent
AP_START, AP_DONE = 0x1, 0x2
DONE_TIMEOUT_S = 10.0  # a layer takes microseconds; ten seconds means the engine hung


class EngineError(RuntimeError):
    """The engine or its DMA did not behave: the bitstream does not match this driver, or hung."""


class Accelerator:
    """One engine behind one AXI DMA: `run_layer` for a single linear layer, `predict` for
    whole images. Buffers are allocated once and grown on demand."""

    def __init__(self, bitfile: str | None = None, backend: Any = None,
                 model: str | None = None, batch: int = 64) -> None:
        self.hw: dict[str, Any] = json.loads((HERE / "hw.json").read_text())
        if backend is None:
            backend = importlib.import_module("pynq")
        self.bitfile = Path(bitfile) if bitfile else HERE / "overlay" / (self.hw["design"]
                                                                         + ".bit")
        self.overlay = backend.Overlay(str(self.bitfile))
        self._allocate: Callable[..., Any] = backend.allocate
        self.engine = getattr(self.overlay, self.hw["engine_cell"])
        self.dma = getattr(self.overlay, self.hw["dma_cell"])
        self.regs: dict[str, int] = self.hw["registers"]
        self.layers: dict[str, dict[str, int]] = {s["name"]: s for s in self.hw["layers"]}
        self.model = runtime.load_model(str(model or HERE / "model.npz"))
        self.batch = batch
        self.cycles = 0  # engine clock cycles of every run so far (its own `cycles` register)
        self.runs = 0
        self._buffers: dict[str, Any] = {}
        self.load_weights()

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
        spec = self.layers.get(name)
        if spec is None:
            raise KeyError(f"no layer {name!r} in this engine; it runs {', '.join(self.layers)}")
        x = np.asarray(rows)
        if x.ndim != 2 or x.shape[1] != spec["k"]:
            raise ValueError(f"{name}: expected rows of shape (M, {spec['k']}), got {x.shape}")
        if x.size and (x.min() < -128 or x.max() > 127):
            raise ValueError(f"{name}: input values outside int8")
        in_width = spec["sf"] * self.hw["simd"]
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
        send = self._send(padded.view(np.uint8).reshape(-1))
        recv = self._buffer("out", m * out_width)
        self.engine.write(self.regs["layer"], spec["index"])
        self.engine.write(self.regs["rows"], m)
        self.dma.recvchannel.transfer(recv, nbytes=m * out_width)
        self.dma.sendchannel.transfer(send, nbytes=m * in_width)
        self.engine.write(self.regs["ctrl"], AP_START)
        self.dma.sendchannel.wait()
        self.dma.recvchannel.wait()
        self._wait_done(spec["name"])
        recv.invalidate()
        y = np.array(recv[:m * out_width]).view(np.int8).reshape(m, out_width)
        return y.astype(np.int64)

    # ---- whole images ------------------------------------------------------------------------
    def logits(self, images: np.ndarray) -> np.ndarray:
        """(B, C, H, W) float images -> (B, classes) int64 logits, every linear layer on the
        engine, batches of `self.batch` images."""
        self._need_model()
        images = np.asarray(images, dtype=np.float32)
        parts = [runtime.logits(self.model, images[i:i + self.batch],
                                linear=self.run_layer)
                 for i in range(0, images.shape[0], self.batch)]
        return np.concatenate(parts)

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
