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
    packages=setuptools.find_packages(include=["tnet_tf", "tnet_tf.*"]),
    python_requires=">=3.11",
    # Pinned to the versions the project is tested with. Keras 3 comes with
    # TensorFlow 2.21; the end-of-life TF Addons package is deliberately absent
    # (README).
    install_requires=[
        "tensorflow==2.21.0",
        "keras==3.15.1",
        "tensorflow-datasets==4.9.10",
        "numpy>=1.26,<2.5",
        "absl-py==2.5.1",
        "mlxtend==0.25.0",
        "matplotlib==3.11.2",
        "tensorboard==2.21.0",
    ],
    extras_require={
        "test": [
            "pytest==9.2.0",
            "pytest-xdist==3.8.0",
            "ruff==0.14.14",
        ],
    },
)
