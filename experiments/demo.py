"""The Megapixel-MNIST demo (`make demo`): TNet against two CNNs.

    python -m experiments.demo --workdir=runs/demo
    python -m experiments.demo --override=max_epochs=8 --override=train_canvases=2000
    python -m experiments.demo --tiny          # a smoke run of a few canvases

Generates the canvases, pretrains the backbone on single digits, trains
TNet, the CNN at TNet's multiply-adds (downscaled canvas) and the CNN at full
resolution, then prints one table (top-1, multiply-adds, ms per image),
exports TNet and draws pictures. See `tnet_tf.demo` for the steps and
README.md for the measured result.
"""

from absl import app

from experiments import flags as common
from tnet_tf import config as config_lib
from tnet_tf import demo

DEFAULT_WORKDIR = "runs/demo"


def demo_config():
    """The demo's config: --tiny picks the smoke size; --override edits it."""
    config = demo.SMOKE if common.TINY.value else demo.DemoConfig()
    if common.SEED.value is not None:
        config = config.replace(seed=common.SEED.value)
    return config_lib.apply_overrides(config, common.OVERRIDE.value)


# The shared flags this entry point reads, listed by its --help.
common.declare_key_flags(__name__, "workdir", "override", "tiny", "seed")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        config = demo_config()
    except (ValueError, TypeError) as error:  # a bad --override
        raise app.UsageError(str(error)) from None
    demo.run_demo(common.WORKDIR.value or DEFAULT_WORKDIR, config)


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    common.run_app(main, __name__)


if __name__ == "__main__":
    run()
