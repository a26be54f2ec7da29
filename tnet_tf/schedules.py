"""The release's learning-rate schedules: named drops and their Keras schedule.

`SCHEDULE_DROPS` names the fractions of the total steps where the release
drops the learning rate; recipes (`tnet_tf.recipes`) name them and
`learning_rate_schedule` turns them into a `PiecewiseConstantDecay`.
"""

import keras

# Fractions of the total steps where the release drops the learning rate
# (original_implementation_detail.md §10).
SCHEDULE_DROPS = {
    "imagenet": (0.8,),
    "fmow": (0.8,),
    "cub": (0.9,),
    "nabirds": (0.9,),
    "two_step": (0.7, 0.85),
}


def learning_rate_schedule(
    initial_learning_rate, total_steps, drops=(0.8,), factor=0.1
):
    """The release's schedule: `PiecewiseConstantDecay` dropping by `factor`.

    `drops` are increasing fractions of `total_steps` in (0, 1), or a key of
    `SCHEDULE_DROPS`; each boundary is `int(total_steps * fraction)`,
    truncated like the release. As in Keras, the update made at
    `optimizer.iterations == n` uses the lower rate once `n > boundary`.
    """
    if isinstance(drops, str):
        drops = SCHEDULE_DROPS[drops]
    drops = tuple(float(f) for f in drops)
    if not drops or not all(0.0 < f < 1.0 for f in drops):
        raise ValueError(f"`drops` must be fractions in (0, 1), got {drops}.")
    if list(drops) != sorted(set(drops)):
        raise ValueError(f"`drops` must be increasing, got {drops}.")
    boundaries = [int(total_steps * f) for f in drops]
    values = [initial_learning_rate * factor**i for i in range(len(drops) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries, values
    )
