"""The demo's training: the backbone's pretraining and the three models.

- `pretrain_backbone`: the tiny CNN on single digits, its weights saved for
  the three models to start from.
- `build_tnet`, `build_cnn`: the models, seeded, on those weights.
- `equal_flops_resolution`: the side where the CNN's multiply-adds match
  TNet's; `cnn_runs` the two CNNs' folders, sides and epoch limits.
- `train`: one model until its validation top-1 stops improving (early
  stopping, best epoch kept, saved as the final checkpoint).
"""

import os
import time

import keras

from tnet_tf import backbones
from tnet_tf import experiment
from tnet_tf import presets
from tnet_tf import profiling
from tnet_tf.demo.config import CNN_DOWNSCALED
from tnet_tf.demo.config import CNN_FULL
from tnet_tf.demo.config import CNN_FULL_PRESET
from tnet_tf.demo.config import PRETRAIN_TEST_DIGITS
from tnet_tf.demo.config import PRETRAINED_WEIGHTS
from tnet_tf.demo.config import TNET_PRESET
from tnet_tf.demo.data import digit_pretraining_set


def pretrain_backbone(config, workdir, verbose):
    """Trains the tiny CNN on single digits of the train split.

    Returns:
        `(weights path, top1)`, the top-1 on digits of the test split (other
        instances than the canvases' training digits) at the same scales.
    """
    path = os.path.join(workdir, PRETRAINED_WEIGHTS)
    images, labels = digit_pretraining_set(config)
    keras.utils.set_random_seed(config.seed)
    with backbones.loading_saved_weights():  # random on purpose
        model = presets.build_model(
            presets.get(CNN_FULL_PRESET).replace(
                name="digit_pretraining",
                image_size=config.pretrain_size,
                backbone_dropout_rate=config.pretrain_dropout_rate,
                dropout_rate=config.pretrain_dropout_rate,
            )
        )
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    model.fit(
        images,
        labels,
        batch_size=2 * config.batch_size,
        epochs=config.pretrain_epochs,
        verbose=verbose,
    )
    test_images, test_labels = digit_pretraining_set(
        config, "test", PRETRAIN_TEST_DIGITS
    )
    top1 = model.evaluate(
        test_images, test_labels, verbose=0, return_dict=True
    )["top1"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.feature_extractor.backbone_model.save_weights(path)
    return path, float(top1)


def build_tnet(config, weights):
    """TNet on `config.canvas_size` canvases from the pretrained backbone
    `weights`, attending `config.locations` cells by default."""
    keras.utils.set_random_seed(config.seed)
    return presets.build_model(
        presets.get(TNET_PRESET).replace(
            image_size=config.canvas_size,
            backbone_weights=weights,
            locations_per_level=(config.locations,),
            seed=config.seed,
        )
    )


def build_cnn(config, name, side, weights):
    """The tiny CNN `name` on `side` px inputs from the pretrained backbone
    `weights`."""
    keras.utils.set_random_seed(config.seed)
    return presets.build_model(
        presets.get(CNN_FULL_PRESET).replace(
            name=name, image_size=side, backbone_weights=weights
        )
    )


def equal_flops_resolution(tnet_macs, candidates=range(16, 257, 1)):
    """The side at which the tiny CNN's multiply-adds are closest to TNet's.

    Multiply-adds of the CNN are counted (`tnet_tf.profiling`) on a
    fully convolutional model, so one model serves every candidate side.
    """
    # Only counted, never trained: no random-initialization warning.
    with backbones.loading_saved_weights():
        model = presets.build(CNN_FULL_PRESET)
    best = None
    for side in candidates:
        macs = profiling.profile(model, side)["flops"]
        if best is None or abs(macs - tnet_macs) < abs(best[1] - tnet_macs):
            best = (side, macs)
        if macs > tnet_macs:
            break
    return best


def cnn_runs(config, tnet):
    """Row name -> `(folder, side, max_epochs)` of the two CNNs: one on
    canvases downscaled to TNet's multiply-adds at
    `config.equal_flops_locations`, one at full resolution."""
    tnet_macs = profiling.profile(
        tnet, config.canvas_size, [config.equal_flops_locations]
    )["flops"]
    return {
        CNN_DOWNSCALED: (
            "cnn_downscaled",
            equal_flops_resolution(tnet_macs)[0],
            config.max_epochs,
        ),
        CNN_FULL: ("cnn_full", config.canvas_size, config.full_cnn_max_epochs),
    }


def train(
    model,
    train_data,
    validation_data,
    config,
    directory,
    verbose,
    max_epochs=None,
):
    """Fits `model` in `directory` (resumable) until its validation top-1
    stops improving, keeps its best epoch and saves it as the final
    checkpoint.

    Returns:
        A dict: `seconds` (training time), `epochs` (epochs run),
        `best_epoch` and `validation_top1` (of the kept weights), and
        `stopped_early` (False when `max_epochs` (default
        `config.max_epochs`) ended the run while the model was still
        improving).
    """
    keras.utils.set_random_seed(config.seed)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        backbone_optimizer=(
            None
            if config.backbone_learning_rate is None
            else keras.optimizers.Adam(config.backbone_learning_rate)
        ),
    )
    started = time.perf_counter()
    # The runner's training step, as `experiments.train` takes it.
    history = experiment.fit_model(
        model,
        train_data,
        directory,
        epochs=max_epochs or config.max_epochs,
        validation=validation_data,
        early_stopping_patience=config.patience,
        tensorboard=False,
        verbose=verbose,
    )
    seconds = time.perf_counter() - started
    experiment.save_final(model, directory)
    return {
        "seconds": seconds,
        **experiment.training_summary(history, config.patience),
    }
