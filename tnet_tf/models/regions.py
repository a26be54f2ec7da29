"""The regions TNet attends, and how their pixels reach the base resolution.

`Regions` is the traversal's bookkeeping for one level: where each region
lies in the input image, its cell and position code, and the log-probability
of having chosen it. `RegionReader` is the seam between the traversal and
the pixels: it brings a level's regions to the base resolution and follows
the traversal down. Two readers exist:

- `CropRegions`: crops the chosen cells at full resolution, level after
  level, then resizes each crop (the release's way; any antialiasing);
- `ResampleRegions`: reads each region's few samples straight from the
  input image, so that nothing is copied at full resolution (see
  `geometry.resample_regions` for when it applies and what it equals).

A benchmark or an experiment swaps the way cells are cropped by giving
`TNet.region_readers` another reader (e.g. a `CropRegions` subclass with
its own `crop`), not by copying the traversal.
"""

import dataclasses
import typing

import tensorflow as tf

from tnet_tf import geometry


def resize_to_base(pixels, side, antialias=False):
    """`pixels` `(n, h, w, c)` resized to `side x side` (bilinear; returned
    as is when already that size)."""
    if pixels.shape[1] == side and pixels.shape[2] == side:
        return pixels
    # Bilinear, without antialiasing by default as the release (detail §1);
    # antialiasing only matters when downscaling.
    return tf.image.resize(
        pixels, (side, side), method="bilinear", antialias=antialias
    )


@dataclasses.dataclass(frozen=True)
class Regions:
    """One level's regions: `n = batch * per_image` boxes of the input.

    Attributes:
        origins: `(n, 2)` float `y0, x0` in input pixels.
        size: the regions' `(height, width)` in input pixels (ints or scalar
            tensors; every region of a level has the same size).
        image_size: the input's `(height, width)`.
        positions: `(n, 3)` float `row, column, level - 1` for the
            positional encoding (rows and columns count cells of the level).
        cells: int32 `(n,)`, the cell index in the parent's grid (-1 at
            level 1).
        log_probs: `(n,)`, the log-probability of choosing the cell in its
            grid (0 at level 1).
        per_image: regions per image at this level.
        level: 0 for the whole image, 1 for its cells, ...
    """

    origins: typing.Any
    size: tuple
    image_size: tuple
    positions: typing.Any
    cells: typing.Any
    log_probs: typing.Any
    per_image: int = 1
    level: int = 0

    @classmethod
    def whole_images(cls, images):
        """Level 1: each image as one region."""
        batch = tf.shape(images)[0]
        size = geometry.spatial_size(images)
        return cls(
            origins=tf.zeros((batch, 2)),
            size=size,
            image_size=size,
            positions=tf.zeros((batch, 3)),
            cells=-tf.ones((batch,), tf.int32),
            log_probs=tf.zeros((batch,)),
        )

    def children(self, chosen, draw_log_probs, grid_size, cell_fraction):
        """The chosen cells `(n, k)` of every region, as the next level's
        regions (region-major, as `geometry.crop_cells` orders its crops);
        `draw_log_probs` `(n, k)` are their selection log-probabilities."""
        origins, size = geometry.child_regions(
            self.origins, self.size, chosen, grid_size, cell_fraction
        )
        rows = tf.cast(chosen // grid_size, tf.float32)
        cols = tf.cast(chosen % grid_size, tf.float32)
        # A child's row and column refine its parent's: cells of level l
        # are numbered on a grid_size**l grid over the image.
        positions = tf.stack(
            [
                self.positions[:, None, 0] * grid_size + rows,
                self.positions[:, None, 1] * grid_size + cols,
                tf.fill(tf.shape(rows), float(self.level + 1)),
            ],
            axis=-1,
        )
        return Regions(
            origins=origins,
            size=size,
            image_size=self.image_size,
            positions=tf.reshape(positions, [-1, 3]),
            cells=tf.reshape(chosen, [-1]),
            log_probs=tf.reshape(draw_log_probs, [-1]),
            per_image=self.per_image * chosen.shape[-1],
            level=self.level + 1,
        )

    def per_image_outputs(self, vectors):
        """`{vectors, boxes, levels, cells, log_probs}`, each `(batch,
        per_image, ...)`, from the regions' feature `vectors` `(n, D)`;
        boxes are normalised `y0, x0, y1, x1`."""
        extent = tf.cast(tf.stack(self.size), tf.float32)
        scale = tf.cast(tf.stack(list(self.image_size) * 2), tf.float32)
        boxes = tf.concat([self.origins, self.origins + extent], axis=-1)
        shape = [-1, self.per_image]
        return {
            "vectors": tf.reshape(vectors, shape + [vectors.shape[-1]]),
            "boxes": tf.reshape(boxes / scale, shape + [4]),
            "levels": tf.fill(
                tf.shape(tf.reshape(self.cells, shape)), self.level + 1
            ),
            "cells": tf.reshape(self.cells, shape),
            "log_probs": tf.reshape(self.log_probs, shape),
        }


class RegionReader:
    """Brings a level's regions to the base resolution; one per call.

    Args:
        base_resolution: the side the feature extractor sees.
        grid_size, cell_fraction: the model's grid.
        antialias: antialias when resizing down.
        compute_dtype: the model's compute dtype.

    Subclasses implement `start` (the call's images), `read` (a level's
    regions, `(n, side, side, 3)`) and `descend` (the chosen cells `(n, k)`
    of the regions last read).
    """

    def __init__(
        self,
        base_resolution,
        grid_size,
        cell_fraction,
        antialias=False,
        compute_dtype="float32",
    ):
        self.base_resolution = base_resolution
        self.grid_size = grid_size
        self.cell_fraction = cell_fraction
        self.antialias = antialias
        self.compute_dtype = compute_dtype

    def start(self, images):
        raise NotImplementedError

    def read(self, regions):
        raise NotImplementedError

    def descend(self, chosen):
        raise NotImplementedError

    def keep(self, indices):
        """Narrows the reader to the regions `indices` (int32 `(m,)`) of
        the level last read, e.g. the images anytime inference still
        reads (`tnet_tf.models.anytime`)."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot narrow its regions to a subset "
            "(anytime inference needs `RegionReader.keep`)."
        )

    def _resize(self, pixels):
        return resize_to_base(pixels, self.base_resolution, self.antialias)


class CropRegions(RegionReader):
    """Keeps each region's full-resolution pixels: crops the chosen cells
    of the current crops, then resizes them to the base resolution."""

    # Swapped by subclasses (e.g. the release's own cropping in bench/):
    # any function with `geometry.crop_cells`' signature, `parents` included.
    crop = staticmethod(geometry.crop_cells)

    def start(self, images):
        # The crops copy pixels at full resolution, cheaper in the compute
        # dtype.
        self._pixels = tf.cast(images, self.compute_dtype)
        # Regions `keep` narrowed to, gathered lazily (None: all).
        self._kept = None

    def _narrowed(self):
        if self._kept is not None:
            self._pixels = tf.gather(self._pixels, self._kept)
            self._kept = None
        return self._pixels

    def read(self, regions):
        return self._resize(self._narrowed())

    def descend(self, chosen):
        # `parents`: only the chosen cells' pixels are copied, not the kept
        # regions whole (anytime inference narrows the full-resolution
        # input at every step).
        self._pixels, _ = self.crop(
            self._pixels,
            chosen,
            self.grid_size,
            self.cell_fraction,
            parents=self._kept,
        )
        self._kept = None

    def keep(self, indices):
        indices = tf.convert_to_tensor(indices, tf.int32)
        if self._kept is not None:
            indices = tf.gather(self._kept, indices)
        self._kept = indices


class ResampleRegions(RegionReader):
    """Reads each region's samples straight from the float32 input, so the
    whole image is never copied (nor cast) at full resolution."""

    def start(self, images):
        self._images = images
        # The image each region lies in.
        self._image_index = tf.range(tf.shape(images)[0])

    def read(self, regions):
        if regions.level == 0:
            return self._resize(self._images)
        return geometry.resample_regions(
            self._images,
            self._image_index,
            regions.origins,
            regions.size,
            self.base_resolution,
        )

    def descend(self, chosen):
        self._image_index = tf.repeat(self._image_index, chosen.shape[-1])

    def keep(self, indices):
        # Only the index: the input images are never copied.
        self._image_index = tf.gather(self._image_index, indices)


REGION_READERS = {"crop": CropRegions, "resample": ResampleRegions}
