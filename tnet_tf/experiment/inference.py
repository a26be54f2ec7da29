"""Inference timing and peak memory: the one way both are measured.

- `peak_memory`: the peak memory of a block of code, TensorFlow's GPU
  allocator on a GPU, the process's resident set on a CPU. The profile
  verb and the benchmarks (`bench.common`) measure with it.
- `measure_inference`: milliseconds per image and peak memory of a model's
  greedy forward pass, for the profile verb and the demo.

The CPU figure does not come from `getrusage().ru_maxrss`: its high-water
mark cannot be reset, and Linux carries the parent's into a child across
fork + exec. It comes from `/proc/self/status`: the high-water mark
(`VmHWM`), reset to the current RSS through `/proc/self/clear_refs` at the
start of the block, minus the RSS (`VmRSS`) then. `ru_maxrss` is the
fallback only where there is no `/proc` (macOS).
"""

import contextlib
import dataclasses
import os
import resource
import sys
import time

import numpy as np
import tensorflow as tf

_STATUS = "/proc/self/status"


@dataclasses.dataclass
class PeakMemory:
    """What `peak_memory` measured, in bytes.

    Attributes:
        source: `"gpu"` (TensorFlow's allocator on `GPU:0`), `"cpu_rss"`
            (`/proc/self/status`) or `"cpu_ru_maxrss"` (no `/proc`).
        start_bytes: in use when the block started (the GPU allocator's
            current bytes, the RSS; the high-water mark for `ru_maxrss`).
        peak_bytes: the peak during the block (`0` until it ends).
        start_peak_bytes: the high-water mark when the block started (after
            the reset, when there was one).
        reset: whether the high-water mark was reset at the start.
    """

    source: str
    start_bytes: int
    start_peak_bytes: int
    reset: bool
    peak_bytes: int = 0

    @property
    def increase_bytes(self):
        """How far the peak rose above what was in use at the start."""
        return self.peak_bytes - self.start_bytes

    @property
    def exact(self):
        """False when the peak may be one from before the block (no reset,
        and the block did not exceed it): the increase is an upper bound."""
        return self.reset or self.peak_bytes > self.start_peak_bytes


def _status_bytes(field):
    """A `/proc/self/status` memory field (`VmRSS`, `VmHWM`) in bytes."""
    with open(_STATUS) as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"{field} not in {_STATUS}")


def _reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux: KiB


@contextlib.contextmanager
def peak_memory(gpu=None):
    """Measures the peak memory of the `with` block: yields a `PeakMemory`,
    whose `peak_bytes` is set when the block ends.

    Args:
        gpu: `True`: TensorFlow's allocator on `GPU:0` (its statistics
            reset first; what is already resident, as weights, is in
            `start_bytes`); `False`: this process's resident set; `None`:
            `GPU:0` when TensorFlow sees a GPU.
    """
    if gpu is None:
        gpu = bool(tf.config.list_logical_devices("GPU"))
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
        start = tf.config.experimental.get_memory_info("GPU:0")["current"]
        record = PeakMemory("gpu", start, start, reset=True)
        yield record
        info = tf.config.experimental.get_memory_info("GPU:0")
        record.peak_bytes = info["peak"]
    elif os.path.exists(_STATUS):
        reset = _reset_peak_rss()
        record = PeakMemory(
            "cpu_rss", _status_bytes("VmRSS"), _status_bytes("VmHWM"), reset
        )
        yield record
        record.peak_bytes = _status_bytes("VmHWM")
    else:
        start = _ru_maxrss_bytes()
        record = PeakMemory("cpu_ru_maxrss", start, start, reset=False)
        yield record
        record.peak_bytes = _ru_maxrss_bytes()


def measure_inference(model, images, setting, repetitions=10, warmup=2):
    """Milliseconds per image and peak memory of inference on `images`.

    The forward pass is one `tf.function` (greedy, `training=False`). The
    first `warmup` calls (tracing included) are not timed; each of the
    `repetitions` timed calls waits for its logits, and gives
    `elapsed / batch` ms per image.

    Memory (`peak_memory`, over the timed calls): on a GPU, TensorFlow's
    peak allocation on `GPU:0`, weights included; on a CPU, how far the
    process's peak resident set rose above its resident set before the
    timed calls.

    Returns:
        A dict: `ms_per_image` (median), `ms_per_image_std`,
        `ms_per_image_all` (list), `memory_bytes`, `memory_source`
        (`"gpu_peak"` or `"cpu_peak_rss_increase"`), `device`.
    """
    if repetitions < 1 or warmup < 0:
        raise ValueError(
            f"Need repetitions >= 1 and warmup >= 0, got {repetitions}, "
            f"{warmup}."
        )

    @tf.function
    def forward(batch):
        return model(batch, training=False, locations_per_level=setting)[
            "logits"
        ]

    gpus = tf.config.list_logical_devices("GPU")
    for _ in range(warmup):
        forward(images).numpy()
    batch = int(images.shape[0])
    times = []
    with peak_memory(gpu=bool(gpus)) as memory:
        for _ in range(repetitions):
            start = time.perf_counter()
            forward(images).numpy()  # .numpy() waits for the device
            times.append((time.perf_counter() - start) * 1000.0 / batch)
    if gpus:
        used, source = memory.peak_bytes, "gpu_peak"
    else:
        used, source = max(0, memory.increase_bytes), "cpu_peak_rss_increase"
    return {
        "ms_per_image": float(np.median(times)),
        "ms_per_image_std": float(np.std(times)),
        "ms_per_image_all": times,
        "memory_bytes": int(used),
        "memory_source": source,
        "device": gpus[0].name if gpus else "CPU",
    }
