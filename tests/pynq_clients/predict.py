"""Client: the generated driver package, unmodified, under the real pynq (PYNQ.remote).

    predict.py PACKAGE_PARENT DESIGN BITFILE IMAGES_NPZ OUT_NPZ BATCH

Imports the driver package DESIGN from PACKAGE_PARENT, classifies the images with
`Accelerator(bitfile=BITFILE, batch=BATCH).predict`, saves the logits to OUT_NPZ and prints
one JSON line: what ran, and how.
"""

import importlib
import json
import sys

import numpy as np
import pynq


def main() -> None:
    parent, design, bitfile, images, out, batch = sys.argv[1:7]
    sys.path.insert(0, parent)
    pkg = importlib.import_module(design)
    x = np.load(images)["images"]
    acc = pkg.Accelerator(bitfile=bitfile, batch=int(batch))
    labels, logits = acc.predict(x)
    leds = acc.leds.read(0x0) if acc.leds is not None else None
    run_layer = None
    if acc.whole is not None and acc.layers:
        name = next(iter(acc.layers))
        try:
            acc.run_layer(name, np.zeros((1, acc.layers[name]["k"]), dtype=np.int64))
        except pkg.EngineError as e:
            run_layer = str(e)
    np.savez(out, logits=logits, labels=labels)
    print(json.dumps({
        "pynq": pynq.__version__, "pynq_file": pynq.__file__, "device": type(
            pynq.Device.active_device).__name__,
        "dma_driver": f"{type(acc.dma).__module__}.{type(acc.dma).__name__}",
        "engine_driver": type(acc.engine).__name__, "runs": acc.runs, "cycles": acc.cycles,
        "leds": leds, "driver_file": pkg.__file__, "run_layer": run_layer}))
    acc.close()


if __name__ == "__main__":
    main()
