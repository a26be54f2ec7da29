"""The predict verb: image files -> top-k classes and attended boxes.

- `load_model`: a `.keras` checkpoint, a preset directory (written by
  `model.save_to_preset`) or an exported SavedModel as one `Predictor`.
- `predict_images`: the one inference path, one image or many: the files
  stream through `tf.data` (read, decode and preprocess as in evaluation,
  batch) into the model, or with `lazy` each is read at full resolution
  (`predict_lazy`); unreadable files are skipped and reported.
- `run_predict`: one image -> top-k classes and a PNG of the attended boxes.
- `run_batch_predict`: many images -> a CSV of one row per image
  (`CSV_COLUMNS`) and, optionally, one PNG per image.
- `load_predictor`: `(predict, image_size)` of `load_model`.
- `read_class_names`: a class-name file, one name per line.
- `csv_columns`: the CSV's columns (`predict_rows`).
"""

import csv
import dataclasses
import glob
import json
import os
from typing import Any
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tnet_tf import config as config_lib
from tnet_tf import export
from tnet_tf import presets
from tnet_tf import profiling
from tnet_tf import viz
from tnet_tf.data import augment
from tnet_tf.experiment import predict_anytime
from tnet_tf.experiment import predict_lazy
from tnet_tf.experiment import predict_rows
from tnet_tf.experiment.models import to_numpy
from tnet_tf.experiment.predict_rows import csv_columns
from tnet_tf.experiment.run_folder import load_checkpoint
from tnet_tf.models import preset_directory


def read_class_names(path):
    """Class names, one per line (line i is class i), or `None`."""
    if not path:
        return None
    with open(path) as file:
        return [line.strip() for line in file if line.strip()]


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A loaded model, whatever its form.

    `predict(images, setting)` returns the output dict as NumPy arrays for
    float32 images `(batch, H, W, 3)` in [-1, 1]; `setting` is a location
    setting such as `[2, 1]`, or `None` for the model's default.
    """

    predict: Callable[..., dict]
    image_size: tuple
    kind: str  # "keras", "preset" or "saved_model"
    class_names: Any = None  # a preset directory's names, else None
    model: Any = None  # the Keras model; None for a SavedModel

    def multiply_adds(self, setting=None):
        """Multiply-adds per image (`tnet_tf.profiling.profile`) of a Keras
        model; `None` for a SavedModel, which does not record them."""
        if self.model is None:
            return None
        result = profiling.profile(self.model, self.image_size, setting)
        return int(result["flops"])


def _saved_model_predictor(model_path):
    served = tf.saved_model.load(model_path)
    assets = os.path.join(model_path, "assets")
    with open(os.path.join(assets, export.SIGNATURE_INFO_FILE)) as file:
        info = json.load(file)

    def predict_saved(images, setting):
        name = (
            export.DEFAULT_ENDPOINT
            if setting is None
            else export.endpoint_name(setting)
        )
        if name not in served.signatures:
            raise config_lib.LocationSettingError(
                f"The SavedModel has no endpoint {name!r}; it has "
                f"{sorted(served.signatures)}."
            )
        outputs = served.signatures[name](images=images)
        return {k: v.numpy() for k, v in outputs.items()}

    return Predictor(predict_saved, tuple(info["image_size"]), "saved_model")


def load_model(model_path):
    """A `Predictor` for a `.keras` checkpoint, a preset directory or an
    exported SavedModel folder (the one holding `saved_model.pb`)."""
    model_path = os.fspath(model_path)
    if os.path.isfile(os.path.join(model_path, "saved_model.pb")):
        return _saved_model_predictor(model_path)
    if preset_directory.is_preset_directory(model_path):
        model, kind = presets.build(model_path), "preset"
    else:
        model, kind = load_checkpoint(model_path), "keras"

    def predict_keras(images, setting):
        return to_numpy(
            model(images, training=False, locations_per_level=setting)
        )

    return Predictor(
        predict_keras,
        tuple(model.config.image_size),
        kind,
        class_names=getattr(model, "class_names", None),
        model=model,
    )


def load_predictor(model_path):
    """`(predict, image_size)` of `load_model(model_path)`."""
    predictor = load_model(model_path)
    return predictor.predict, predictor.image_size


def expand_images(patterns):
    """The files matching glob `patterns` (a string or a list), sorted per
    pattern, each once.

    Raises:
        FileNotFoundError: no file matches.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    paths = {}
    for pattern in patterns:
        for path in sorted(glob.glob(os.fspath(pattern), recursive=True)):
            if os.path.isfile(path):
                paths.setdefault(path, None)
    if not paths:
        raise FileNotFoundError(
            f"No image file matches {', '.join(map(repr, patterns))}."
        )
    return list(paths)


def image_dataset(paths, image_size, batch_size):
    """`(paths, images)` batches: each file read, decoded and preprocessed
    as in evaluation (`augment.preprocess_for_evaluation`), in order; files
    that cannot be read or decoded are left out."""

    def load(path):
        encoded = tf.io.read_file(path)
        return path, augment.preprocess_for_evaluation(encoded, image_size)

    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(paths))
    dataset = dataset.map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    dataset = dataset.ignore_errors()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def unreadable_reason(path):
    """Why `path` cannot be read as an image (one line)."""
    try:
        augment.decode_image(tf.io.read_file(path))
    except tf.errors.OpError as error:
        return error.message.strip().splitlines()[0]
    return "could not be read"


def top_classes(outputs_for_one_image, class_names=None, top_k=5):
    """`[(class id, name, probability), ...]`, most probable first; the
    name is the class id as text when there are no names."""
    logits = np.asarray(outputs_for_one_image["logits"], np.float64)
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    ranked = np.argsort(-probabilities, kind="stable")[:top_k]
    return [
        (
            int(c),
            class_names[c] if class_names else str(int(c)),
            float(probabilities[c]),
        )
        for c in ranked
    ]


def predict_images(
    predictor,
    paths,
    *,
    setting=None,
    batch_size=32,
    on_skip=None,
    progress=False,
    lazy=False,
):
    """Yields `(path, outputs for that image)` for each readable file of
    `paths`, in order, predicted in batches of `batch_size` (or with
    `lazy`, one by one at full resolution: `predict_lazy.predict_files`).

    `on_skip(path, reason)` is called for each file that cannot be read or
    decoded (default: a logged warning); `progress` shows a Keras
    `Progbar` of the files done.
    """
    if on_skip is None:

        def on_skip(path, reason):
            logging.warning("Skipped %s: %s", path, reason)

    paths = list(dict.fromkeys(os.fspath(p) for p in paths))
    if lazy:
        yield from predict_lazy.predict_files(
            predictor,
            paths,
            setting=setting,
            on_skip=on_skip,
            progress=progress,
        )
        return
    bar = keras.utils.Progbar(len(paths), unit_name="image")
    done = 0
    dataset = image_dataset(paths, predictor.image_size, batch_size)
    for batch_paths, images in dataset:
        outputs = predictor.predict(images, setting)
        for index, path in enumerate(batch_paths.numpy()):
            path = path.decode()
            while paths[done] != path:  # files the dataset left out
                on_skip(paths[done], unreadable_reason(paths[done]))
                done += 1
            done += 1
            yield path, viz.outputs_for_image(outputs, index)
        if progress:
            bar.update(done)
    for path in paths[done:]:
        on_skip(path, unreadable_reason(path))
    if progress:
        bar.update(len(paths), finalize=True)


def _draw(png, path, one, class_names, top_k):
    original = predict_lazy.picture_pixels(path)  # a large JPEG reduced
    viz.save_attention_png(png, original, one, class_names, top_k)


def run_predict(
    image_path,
    model_path,
    output_png=None,
    *,
    locations=None,
    class_names=None,
    top_k=5,
    lazy=False,
    anytime_threshold=None,
):
    """Classifies one image file and draws what the model attended.

    The image is a batch of one through `predict_images`: preprocessed as
    in evaluation (square bilinear resize to the model's image size,
    [-1, 1]); the boxes are drawn on the original image, one colour per
    level, each labelled with its location probability, under a caption of
    the top-k classes.

    `image_path` is a JPEG, PNG, GIF or BMP file; `model_path` a `.keras`
    checkpoint, a preset directory or an exported SavedModel folder;
    `output_png` the picture (default `<image stem>_attention.png` next to
    the image); `locations` one setting such as `(2, 1)` (default the
    model's); `class_names` a list (`read_class_names`; default a preset
    directory's names, else class ids); `top_k` the classes listed; `lazy`
    reads the image at full resolution instead (`predict_lazy`);
    `anytime_threshold` stops once sure (`predict_anytime`).

    Returns:
        A dict: `top` (list of `(class, probability)`), `png`, `outputs`
        (the image's outputs, `viz.outputs_for_image`).

    Raises:
        ValueError: the file is not a readable image.
    """
    predictor = predict_anytime.anytime_predictor(
        load_model(model_path), anytime_threshold, lazy
    )
    class_names = class_names or predictor.class_names
    skipped = []
    results = list(
        predict_images(
            predictor,
            [image_path],
            setting=None if locations is None else list(locations),
            batch_size=1,
            on_skip=lambda path, reason: skipped.append(reason),
            lazy=lazy,
        )
    )
    if skipped:
        raise ValueError(f"{image_path} is not a readable image: {skipped[0]}")
    one = predict_anytime.attended_only(results[0][1])
    top = [(n, p) for _, n, p in top_classes(one, class_names, top_k)]
    if output_png is None:
        output_png = f"{os.path.splitext(image_path)[0]}_attention.png"
    os.makedirs(os.path.dirname(os.path.abspath(output_png)), exist_ok=True)
    _draw(output_png, image_path, one, class_names, top_k)
    return {"top": top, "png": output_png, "outputs": one}


def run_batch_predict(
    images,
    model_path,
    output_csv,
    *,
    locations=None,
    class_names=None,
    top_k=5,
    batch_size=32,
    pictures_dir=None,
    on_skip=None,
    progress=True,
    lazy=False,
    anytime_threshold=None,
):
    """Classifies many image files in one process and writes a CSV.

    `images` are glob pattern(s) (`expand_images`) or files; `model_path`,
    `locations`, `class_names`, `top_k`, `lazy` and `anytime_threshold`
    are as in `run_predict`. The CSV
    has one row per readable image (`csv_columns`): its path, the top-k
    class ids, names and probabilities, the attended boxes (a JSON list of
    normalised `[y0, x0, y1, x1]`) and their levels (JSON), the
    multiply-adds per image (empty for a SavedModel) and the path of its
    picture (`<pictures_dir>/<stem>_attention.png`, empty without
    `pictures_dir`), with `anytime_threshold` the image's own multiply-adds
    and `locations_used`. `on_skip(path, reason)` is called per file
    skipped.

    Returns:
        A dict: `csv`, `rows` (images classified), `skipped` (list of
        `(path, reason)`), `multiply_adds`, `kind` (the model's form).

    Raises:
        FileNotFoundError: no file matches `images`.
    """
    paths = expand_images(images)
    predictor = predict_anytime.anytime_predictor(
        load_model(model_path), anytime_threshold, lazy
    )
    class_names = class_names or predictor.class_names
    setting = None if locations is None else list(locations)
    multiply_adds = predictor.multiply_adds(setting)
    skipped = []

    def skip(path, reason):
        skipped.append((path, reason))
        if on_skip is not None:
            on_skip(path, reason)

    for folder in (pictures_dir, os.path.dirname(output_csv)):
        os.makedirs(folder or ".", exist_ok=True)
    rows, used = 0, {}
    with open(output_csv, "w", newline="") as file:
        columns = csv_columns(top_k, anytime_threshold is not None)
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        for path, one in predict_images(
            predictor,
            paths,
            setting=setting,
            batch_size=batch_size,
            on_skip=skip,
            progress=progress,
            lazy=lazy,
        ):
            one = predict_anytime.attended_only(one)
            top = top_classes(one, class_names, top_k)
            picture = None
            if pictures_dir:
                picture = predict_rows.picture_path(pictures_dir, path, used)
                _draw(picture, path, one, class_names, top_k)
            writer.writerow(
                predict_rows.csv_row(
                    path, one, top, top_k, multiply_adds, picture
                )
            )
            rows += 1
    return {
        "csv": output_csv,
        "rows": rows,
        "skipped": skipped,
        "multiply_adds": multiply_adds,
        "kind": predictor.kind,
    }
