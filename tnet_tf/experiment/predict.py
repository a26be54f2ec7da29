"""The predict verb: image files -> top-k classes and attended boxes.

- `run_predict`: one image -> top-k classes and a PNG of the attended boxes.
- `run_batch_predict`: many images -> a CSV of one row per image
  (`csv_columns`) and, optionally, one PNG per image.
- `read_class_names`: a class-name file, one name per line.
- `top_classes`: one image's most probable classes.

Over its pieces: `predictor` (`load_model`: a `.keras` checkpoint, a
preset directory or an exported SavedModel as one `Predictor`),
`image_files` (`predict_images`, the one inference path: the files stream
through `tf.data` into the model, or with `lazy` each is read at full
resolution, `predict_lazy`; `expand_images`), `predict_rows` (the CSV's
columns and rows) and `predict_anytime` (`--anytime_threshold`).
"""

import csv
import os

import numpy as np

from tnet_tf import viz
from tnet_tf.experiment import predict_anytime
from tnet_tf.experiment import predict_lazy
from tnet_tf.experiment import predict_rows
from tnet_tf.experiment.image_files import expand_images
from tnet_tf.experiment.image_files import predict_images
from tnet_tf.experiment.predict_rows import csv_columns
from tnet_tf.experiment.predictor import load_model


def read_class_names(path):
    """Class names, one per line (line i is class i), or `None`."""
    if not path:
        return None
    with open(path) as file:
        return [line.strip() for line in file if line.strip()]


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
