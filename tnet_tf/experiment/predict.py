"""The predict verb: one image file -> top-k classes and attended boxes.

- `run_predict`: classifies an image and draws the attended boxes on it.
- `load_predictor`: a `.keras` checkpoint or an exported SavedModel as one
  `predict(images, setting)` function.
- `read_class_names`: a class-name file, one name per line.
"""

import json
import os

import numpy as np
import tensorflow as tf

from tnet_tf import config as config_lib
from tnet_tf import export
from tnet_tf import viz
from tnet_tf.data import augment
from tnet_tf.experiment.models import to_numpy
from tnet_tf.experiment.run_folder import load_checkpoint


def read_class_names(path):
    """Class names, one per line (line i is class i), or `None`."""
    if not path:
        return None
    with open(path) as file:
        return [line.strip() for line in file if line.strip()]


def load_predictor(model_path):
    """`(predict, image_size)` for a `.keras` checkpoint or a SavedModel.

    `predict(images, setting)` returns the output dict as NumPy arrays; a
    SavedModel answers from the endpoint of `setting` (`serve` for
    `None`), a checkpoint from the Keras model.
    """
    if os.path.isfile(os.path.join(model_path, "saved_model.pb")):
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

        return predict_saved, tuple(info["image_size"])

    model = load_checkpoint(model_path)

    def predict_keras(images, setting):
        return to_numpy(
            model(images, training=False, locations_per_level=setting)
        )

    return predict_keras, tuple(model.config.image_size)


def run_predict(
    image_path,
    model_path,
    output_png=None,
    *,
    locations=None,
    class_names=None,
    top_k=5,
):
    """Classifies one image file and draws what the model attended.

    The image is preprocessed as in evaluation (square bilinear resize to
    the model's image size, [-1, 1]); the boxes are drawn on the original
    image, one colour per level, each labelled with its location
    probability, under a caption of the top-k classes.

    Args:
        image_path: a JPEG, PNG, GIF or BMP file.
        model_path: a `.keras` checkpoint or an exported SavedModel folder.
        output_png: the picture; default `<image stem>_attention.png` next
            to the image.
        locations: one setting such as `(2, 1)`; default the model's.
        class_names: list of names (`read_class_names`), or `None`.
        top_k: classes listed.

    Returns:
        A dict: `top` (list of `(class, probability)`), `png`, `outputs`.
    """
    predict, image_size = load_predictor(model_path)
    encoded = tf.io.read_file(image_path)
    images = augment.preprocess_for_evaluation(encoded, image_size)[None]
    outputs = predict(images, None if locations is None else list(locations))
    one = viz.outputs_for_image(outputs, 0)
    logits = one["logits"].astype(np.float64)
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    ranked = np.argsort(-probabilities, kind="stable")[:top_k]
    top = [
        (
            class_names[c] if class_names else str(int(c)),
            float(probabilities[c]),
        )
        for c in ranked
    ]
    if output_png is None:
        stem = os.path.splitext(image_path)[0]
        output_png = f"{stem}_attention.png"
    os.makedirs(os.path.dirname(os.path.abspath(output_png)), exist_ok=True)
    original = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    viz.save_attention_png(
        output_png, original.numpy(), one, class_names=class_names, top_k=top_k
    )
    return {"top": top, "png": output_png, "outputs": outputs}
