"""Seconds per `cifar-dcgan` iteration of a Keras/TensorFlow build of the recipe, beside ganctl's.

The yardstick the speed issue names: the Keras CIFAR-10 tutorial's training loop (batch 128:
D on 64 real images, D on 64 generated ones, then G through the stacked model on 128
latents, each a ``train_on_batch``), with the networks of docs/architecture's `cifar-dcgan`
written here from its layer table (not copied from the tutorial). It then times ganctl's step
(``ganctl.bench.harness``) in the same process run, fp32 (``--no-amp``) and the default.

TensorFlow is not a dependency of ganctl: without it this prints why and exits 0. Install it
outside the project's environment, e.g. ``python -m venv /tmp/tf && /tmp/tf/bin/pip install
tensorflow-cpu tf_keras``; run ``--part keras`` with that interpreter and ``--part ganctl`` with ganctl's,
alternately (or ``--part both`` where one environment has both).

    python benchmarks/keras_reference.py --steps 10 --warmup 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

BATCH = 128
LATENT = 100


def keras_seconds_per_iteration(steps: int, warmup: int) -> dict[str, float]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    try:  # Keras 2, the tutorial's: D's `trainable = False` takes effect in the stacked model only
        import tf_keras as keras
    except ImportError:
        from tensorflow import keras

        print("warning: tf_keras is not installed; Keras 3 freezes D in its own updates too (pip install tf_keras)")
    layers = keras.layers

    def leaky():
        return layers.LeakyReLU(0.2)

    d = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(64, 3, padding="same"), leaky(),
        layers.Conv2D(128, 3, strides=2, padding="same"), leaky(),
        layers.Conv2D(128, 3, strides=2, padding="same"), leaky(),
        layers.Conv2D(256, 3, strides=2, padding="same"), leaky(),
        layers.Flatten(), layers.Dropout(0.4), layers.Dense(1, activation="sigmoid"),
    ])  # fmt: skip
    d.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), metrics=["accuracy"])
    g = keras.Sequential([
        keras.Input((LATENT,)),
        layers.Dense(4 * 4 * 256), leaky(), layers.Reshape((4, 4, 256)),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"), leaky(),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"), leaky(),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"), leaky(),
        layers.Conv2D(3, 3, activation="tanh", padding="same"),
    ])  # fmt: skip
    d.trainable = False
    gan = keras.Sequential([g, d])
    gan.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))

    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, (1024, 32, 32, 3)).astype("float32")
    half = BATCH // 2

    def iteration() -> None:
        real = data[rng.integers(0, len(data), half)]
        d.train_on_batch(real, np.ones((half, 1)))
        fake = g.predict(rng.standard_normal((half, LATENT)).astype("float32"), verbose=0)
        d.train_on_batch(fake, np.zeros((half, 1)))
        gan.train_on_batch(rng.standard_normal((BATCH, LATENT)).astype("float32"), np.ones((BATCH, 1)))

    return seconds_per_call(iteration, steps, warmup)


def seconds_per_call(fn, steps: int, warmup: int) -> dict[str, float]:
    """The median and the fastest of ``steps`` timed calls: on a shared machine the fastest is the
    steadier estimate of what the code itself costs (other processes only ever add time)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return {"median": round(times[len(times) // 2], 4), "fastest": round(times[0], 4)}


def ganctl_seconds_per_iteration(steps: int, warmup: int, amp: bool | None) -> dict[str, float]:
    import torch

    from ganctl.bench.harness import ganctl_step

    step, _, _ = ganctl_step("cifar-dcgan", torch.device("cpu"), amp=amp, channels_last=True, compile=False, batch_size=BATCH)
    return seconds_per_call(step, steps, warmup)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--part", choices=("both", "keras", "ganctl"), default="both",
                        help="time one side only (TensorFlow and torch in two environments: run each side there, alternately)")
    args = parser.parse_args()
    figures = {}
    if args.part in ("both", "keras"):
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            print("TensorFlow is not installed here: the Keras side is skipped (see this file's docstring)")
        else:
            figures["keras_s_per_it"] = keras_seconds_per_iteration(args.steps, args.warmup)
    if args.part in ("both", "ganctl"):
        figures["ganctl_fp32_s_per_it"] = ganctl_seconds_per_iteration(args.steps, args.warmup, amp=False)
        figures["ganctl_default_s_per_it"] = ganctl_seconds_per_iteration(args.steps, args.warmup, amp=None)
        if "keras_s_per_it" in figures:
            keras = figures["keras_s_per_it"]
            for key in ("ganctl_fp32_s_per_it", "ganctl_default_s_per_it"):
                figures[key.replace("_s_per_it", "_vs_keras")] = {k: round(v / keras[k], 3) for k, v in figures[key].items()}
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
