"""What a built backbone is and where TNet reads it.

`BackboneSpec` is what `build_backbone` returns: the model, the layer pooled
into the feature vector `V`, and the tap (layer + slice) giving the spatial
map `F`. `check_tap` and `check_tap_slice` validate a tap, the registered one
or one a caller names (`tnet_tf.layers.FeatureExtractor`).
"""

import dataclasses

import keras

FAMILIES = ("bagnet", "efficientnet", "generic")


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A built backbone and the places TNet reads it.

    Attributes:
        model: functional `keras.Model`; input `(H, W, 3)` float pixels in
            [-1, 1] (any conversion `input_normalization` asks for is
            inside).
        feature_layer: name of the layer whose output `(batch, h, w, D)` is
            globally average-pooled into the feature vector `V`.
        tap_layer: name of the layer whose output is the spatial map `F`
            before slicing; `None` when no grid is tapped.
        tap_slice: `(start, stop, step)` applied to both spatial axes of the
            tap output to get the `n x n` map; `None` when no grid is tapped.
        family: `"bagnet"`, `"efficientnet"` or `"generic"`; selects the
            location-module / positional-encoding variants and initializers.
    """

    model: keras.Model
    feature_layer: str
    tap_layer: str | None
    tap_slice: tuple | None
    family: str


def check_tap(spec, grid_size, name):
    """Checks that the sliced tap of `spec` is exactly `grid_size` square.

    Args:
        spec: a `BackboneSpec` with `tap_layer` set; its model must have a
            fixed input size.
        grid_size: int, the grid side `n`.
        name: the backbone's name, for the error message.

    Returns:
        The tap layer's output map size `(h, w)` before slicing.

    Raises:
        ValueError: unknown tap layer, bad slice, or a sliced map that is not
            `grid_size x grid_size`.
    """
    try:
        layer = spec.model.get_layer(spec.tap_layer)
    except ValueError:
        raise ValueError(
            f"Backbone '{name}' has no layer named '{spec.tap_layer}' "
            "(see `spec.model.summary()` for the layer names)."
        ) from None
    shape = layer.output.shape
    if len(shape) != 4:
        raise ValueError(
            f"The tap layer '{spec.tap_layer}' of backbone '{name}' must "
            f"output a 4-D map (batch, h, w, c); its output shape is {shape}."
        )
    map_size = tuple(shape[1:3])
    sliced = tuple(
        len(range(*slice(*spec.tap_slice).indices(side))) for side in map_size
    )
    if sliced != (grid_size, grid_size):
        raise ValueError(
            f"The tap layer '{spec.tap_layer}' of backbone '{name}' gives a "
            f"{map_size[0]}x{map_size[1]} map at input size "
            f"{tuple(spec.model.input.shape[1:3])}; tap_slice "
            f"{spec.tap_slice} turns it into {sliced[0]}x{sliced[1]}, not "
            f"the {grid_size}x{grid_size} grid. Use the backbone's base "
            "resolution or pass a matching tap_layer/tap_slice."
        )
    return map_size


def check_tap_slice(tap_slice):
    """Returns `tap_slice` as a 3-tuple of ints/None or raises ValueError."""
    if not (
        isinstance(tap_slice, (tuple, list))
        and len(tap_slice) == 3
        and all(
            value is None
            or (isinstance(value, int) and not isinstance(value, bool))
            for value in tap_slice
        )
        and tap_slice[2] != 0
    ):
        raise ValueError(
            "`tap_slice` must be (start, stop, step) with ints or None "
            f"and a non-zero step. Received: tap_slice={tap_slice!r}"
        )
    return tuple(tap_slice)


def default_tap(name, grid_size, taps):
    """(tap_layer, tap_slice) for `grid_size` from `taps`, or (None, None).

    Args:
        name: the backbone's name, for the error message.
        grid_size: int `n` or `None` (no tap).
        taps: `{grid size: (tap_layer, tap_slice)}`, the grids the backbone
            supports.

    Raises:
        ValueError: `grid_size` is not in `taps`.
    """
    if grid_size is None:
        return None, None
    if grid_size not in taps:
        raise ValueError(
            f"Backbone '{name}' does not support grid_size={grid_size}. "
            "Supported grid sizes: "
            f"{', '.join(str(n) for n in sorted(taps)) or 'none'}."
        )
    return taps[grid_size]
