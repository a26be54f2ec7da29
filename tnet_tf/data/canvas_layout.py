"""The random layout of one Megapixel MNIST canvas.

`check_layout` rejects settings no canvas can be laid out with. The other
functions are the random draws of one canvas, from that canvas's own
generator: the classes and MNIST instances of its digits, the places of the
digits and noise patches (28 px boxes that do not overlap), and the noise
patches themselves. `MegapixelMNIST.canvas` makes them in a fixed order;
another order or other draws would change every canvas.
"""

import numpy as np

from tnet_tf.data.mnist_digits import DIGIT_SIZE
from tnet_tf.data.mnist_digits import NUM_CLASSES

# Placement gives up after this many random tries per object.
MAX_PLACEMENT_ATTEMPTS = 1000


def check_layout(canvas_size, num_digits, num_label_digits, num_noise):
    """Raises `ValueError` unless canvases of these settings can be laid out."""
    if canvas_size < DIGIT_SIZE:
        raise ValueError(
            f"`canvas_size` must be at least {DIGIT_SIZE}, got {canvas_size}."
        )
    if num_digits < 1:
        raise ValueError(f"`num_digits` must be at least 1, got {num_digits}.")
    if not 1 <= num_label_digits <= num_digits:
        raise ValueError(
            f"`num_label_digits` must be in [1, num_digits={num_digits}], "
            f"got {num_label_digits}."
        )
    # Each of the 9 other classes may appear at most num_label_digits - 1
    # times, so the label stays the unique most frequent class.
    if num_digits - num_label_digits > (NUM_CLASSES - 1) * (
        num_label_digits - 1
    ):
        raise ValueError(
            f"{num_digits - num_label_digits} other digits cannot all "
            f"appear fewer than num_label_digits={num_label_digits} times "
            "per class."
        )
    # Random placement needs room: the digits may cover at most a third
    # of the canvas.
    if 3 * num_digits * DIGIT_SIZE**2 > canvas_size**2:
        raise ValueError(
            f"{num_digits} digits of {DIGIT_SIZE} px do not fit without "
            f"overlap on a {canvas_size} px canvas (they may cover at most "
            "a third of it)."
        )
    if num_noise < 0:
        raise ValueError(f"`num_noise` must be >= 0, got {num_noise}.")


def digit_classes(rng, label, num_digits, num_label_digits):
    """The class of each digit: `num_label_digits` times `label` first, then
    others, none as frequent as `label`."""
    others = []
    counts = np.zeros(NUM_CLASSES, np.int64)
    for _ in range(num_digits - num_label_digits):
        allowed = [
            digit
            for digit in range(NUM_CLASSES)
            if digit != label and counts[digit] < num_label_digits - 1
        ]
        digit = int(rng.choice(allowed))
        counts[digit] += 1
        others.append(digit)
    return [label] * num_label_digits + others


def digit_sources(rng, pools, classes):
    """The MNIST row of each digit, drawn from `pools` (rows per class)."""
    sources = np.zeros(len(classes), np.int64)
    classes = np.asarray(classes)
    for digit in np.unique(classes):
        slots = np.flatnonzero(classes == digit)
        # Distinct instances within a canvas.
        sources[slots] = rng.choice(
            pools[digit], size=len(slots), replace=False
        )
    return sources


def place_box(rng, canvas_size, taken, what, attempts=MAX_PLACEMENT_ATTEMPTS):
    """A random top-left corner whose 28 px box misses every `taken` one."""
    limit = canvas_size - DIGIT_SIZE + 1
    for _ in range(attempts):
        y, x = (int(v) for v in rng.integers(0, limit, size=2))
        if all(
            abs(y - ty) >= DIGIT_SIZE or abs(x - tx) >= DIGIT_SIZE
            for ty, tx in taken
        ):
            return y, x
    raise RuntimeError(
        f"Could not place a {what} without overlap after {attempts} tries "
        f"on a {canvas_size} px canvas; use a larger canvas or fewer "
        "digits/noise patterns."
    )


def place_digits(rng, canvas_size, num_digits):
    """Top-left corners of `num_digits` non-overlapping digits."""
    # Sequential random placement can paint itself into a corner on a
    # crowded canvas: start over rather than give up.
    for _ in range(MAX_PLACEMENT_ATTEMPTS // 10 - 1):
        corners = []
        try:
            for _ in range(num_digits):
                corners.append(
                    place_box(rng, canvas_size, corners, "digit", attempts=100)
                )
            return corners
        except RuntimeError:
            continue
    corners = []
    for _ in range(num_digits):
        corners.append(place_box(rng, canvas_size, corners, "digit"))
    return corners


def noise_patches(rng, count, size=DIGIT_SIZE, segments_per_patch=2):
    """`count` noise patches, uint8 `(count, size, size)`.

    Each patch holds `segments_per_patch` anti-aliased line segments with a
    random start, angle (any direction), length (35-75% of the patch) and
    stroke half-width (0.8-1.6 px), drawn to look like parts of digits.
    """
    shape = (count, segments_per_patch)
    start = rng.uniform(4.0, size - 4.0, size=shape + (2,))  # (y, x)
    angle = rng.uniform(0.0, np.pi, size=shape)
    length = rng.uniform(0.35 * size, 0.75 * size, size=shape)
    half_width = rng.uniform(0.8, 1.6, size=shape)
    step = (
        np.stack([np.sin(angle), np.cos(angle)], axis=-1) * length[..., None]
    )
    end = np.clip(start + step, 2.0, size - 3.0)
    direction = end - start  # (count, segments, 2)
    grid = np.stack(np.mgrid[0:size, 0:size], axis=-1).astype(np.float64)
    # Distance of every pixel to every segment: (count, segments, size, size).
    offset = grid[None, None] - start[:, :, None, None, :]
    squared_length = np.maximum((direction**2).sum(-1), 1e-6)[..., None, None]
    t = np.clip(
        (offset * direction[:, :, None, None, :]).sum(-1) / squared_length,
        0.0,
        1.0,
    )
    nearest = t[..., None] * direction[:, :, None, None, :]
    distance = np.sqrt(((offset - nearest) ** 2).sum(-1))
    strokes = np.clip(half_width[..., None, None] + 0.5 - distance, 0.0, 1.0)
    return np.round(255.0 * strokes.max(axis=1)).astype(np.uint8)
