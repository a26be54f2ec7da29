"""What the pipelines need to know about each dataset, as data.

A `DatasetSpec` holds the facts that differ between datasets: the number of
classes, the label offset of the records, the split sizes, which training
augmentation of the release applies, and the tensorflow-datasets name where
one exists. `tnet_tf.data.pipelines.make_dataset` reads any of them with the
same code; adding a dataset is one `DatasetSpec` and one `register` line.
A record folder may also describe itself (`folder_spec`): its
`dataset.json`, written by `data_prep.image_folder`, holds its spec.

Reference: `original_implementation_detail.md` §11 (splits, label offsets,
augmentation per dataset).
"""

import dataclasses
import json
import os
import typing

from tnet_tf.data import augment
from tnet_tf.data import megapixel_mnist
from tnet_tf.registry import Registry


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """The facts of one dataset that its input pipeline depends on.

    Args:
        name: registry name, e.g. `"imagenet"`.
        num_classes: number of classes the model predicts.
        label_offset: subtracted from the stored record label when reading,
            so the model sees labels in `[0, num_classes)`. 1 for ImageNet
            and CUB (their records store 1-based labels, as the release's
            writers), 0 for the others. Not applied to datasets read from
            tensorflow-datasets' own catalog, whose labels are 0-based.
        splits: split name -> number of records (`None` where unknown),
            as the converters write them.
        augmentation: the training augmentation, one of
            `tnet_tf.data.augment.AUGMENTATIONS`: `"imagenet"` (ImageNet and
            fMoW), `"birds"` (CUB and NABirds) or `"none"`.
        has_boxes: whether the records carry object boxes.
        tfds_name: the tensorflow-datasets catalog name, or `None`.
        tfds_splits: our split name -> the catalog's split name, where they
            differ (CUB's "validation" is the catalog's "test").
        image_size: the input side the paper's models use for this dataset.
        training_split: the split models train on.
        evaluation_split: the split the paper reports on.
        description: one line for listings.

    Example:
    >>> spec = get_spec("cub")
    >>> spec.num_classes, spec.label_offset, spec.augmentation
    (200, 1, 'birds')
    """

    name: str
    num_classes: int
    label_offset: int = 0
    splits: typing.Mapping[str, typing.Optional[int]] = dataclasses.field(
        default_factory=dict
    )
    augmentation: str = "imagenet"
    has_boxes: bool = False
    tfds_name: typing.Optional[str] = None
    tfds_splits: typing.Mapping[str, str] = dataclasses.field(
        default_factory=dict
    )
    image_size: int = 224
    training_split: str = "train"
    evaluation_split: str = "validation"
    description: str = ""

    def __post_init__(self):
        if self.num_classes <= 0:
            raise ValueError(
                f"`num_classes` must be positive, got {self.num_classes}."
            )
        if self.label_offset < 0:
            raise ValueError(
                f"`label_offset` must be >= 0, got {self.label_offset}."
            )
        if self.augmentation not in augment.AUGMENTATIONS:
            raise ValueError(
                f"`augmentation` must be one of {augment.AUGMENTATIONS}, got "
                f"{self.augmentation!r}."
            )
        if self.image_size <= 0:
            raise ValueError(
                f"`image_size` must be positive, got {self.image_size}."
            )
        for split in (self.training_split, self.evaluation_split):
            if split not in self.splits:
                raise ValueError(
                    f"Split {split!r} of dataset {self.name!r} is not in "
                    f"`splits` ({sorted(self.splits)})."
                )

    def check_split(self, split: str) -> None:
        """Raises `ValueError` naming the known splits if `split` is unknown."""
        if split not in self.splits:
            raise ValueError(
                f"Dataset {self.name!r} has no split {split!r}. Known splits: "
                f"{', '.join(sorted(self.splits))}."
            )

    def num_examples(self, split: str) -> int | None:
        """The number of records of `split` (`None` where unknown)."""
        self.check_split(split)
        return self.splits[split]

    def tfds_split(self, split: str) -> str:
        """The tensorflow-datasets split name of our `split`."""
        self.check_split(split)
        return self.tfds_splits.get(split, split)


DATASETS = Registry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    """Adds `spec` to `DATASETS` under `spec.name` and returns it."""
    return DATASETS.register(spec.name, spec)


def get_spec(name: str | DatasetSpec) -> DatasetSpec:
    """The `DatasetSpec` registered as `name` (a spec passes through)."""
    if isinstance(name, DatasetSpec):
        return name
    return DATASETS.get(name)


def names() -> list[str]:
    """Sorted names of the registered datasets."""
    return DATASETS.names()


# The file of a record folder that describes itself (`folder_spec`).
FOLDER_SPEC_FILE = "dataset.json"


def write_folder_spec(
    data_dir: str | os.PathLike, spec: DatasetSpec, **extra: typing.Any
) -> str:
    """Writes `spec` (and JSON-able `extra` keys) as `<data_dir>/dataset.json`.

    Written under a temporary name, then renamed: the file is complete or
    absent. Returns its path.
    """
    path = os.path.join(os.fspath(data_dir), FOLDER_SPEC_FILE)
    content = {**extra, **dataclasses.asdict(spec)}
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as file:
        json.dump(content, file, indent=1, sort_keys=True)
    os.replace(temporary, path)
    return path


def folder_spec(data_dir: str | os.PathLike) -> DatasetSpec | None:
    """The `DatasetSpec` a record folder describes, or `None` if it does not.

    Reads `<data_dir>/dataset.json` (`write_folder_spec`; keys other than
    the spec's fields, e.g. `class_names`, are ignored here) and registers
    the spec under its name, so recipes and pipelines find it as a
    built-in one. Reading the folder again returns the registered spec.

    Raises:
        ValueError: an unreadable file, or a name already registered with
            other facts.
    """
    path = os.path.join(os.fspath(data_dir), FOLDER_SPEC_FILE)
    if not os.path.isfile(path):
        return None
    fields = {field.name for field in dataclasses.fields(DatasetSpec)}
    try:
        with open(path) as file:
            content = json.load(file)
        spec = DatasetSpec(
            **{key: value for key, value in content.items() if key in fields}
        )
    except (TypeError, AttributeError, ValueError) as error:
        raise ValueError(f"{path} does not describe a dataset: {error}")
    if spec.name in DATASETS:
        if DATASETS.get(spec.name) != spec:
            raise ValueError(
                f"{path} describes a dataset '{spec.name}', a name already "
                "taken by another dataset; convert it again under another "
                "name."
            )
        return DATASETS.get(spec.name)
    return register(spec)


# === Datasets of the paper (original_implementation_detail.md §11.2) ===
register(
    DatasetSpec(
        name="imagenet",
        num_classes=1000,
        label_offset=1,
        splits={"train": 1_281_167, "validation": 50_000},
        augmentation="imagenet",
        has_boxes=True,
        tfds_name="imagenet2012",
        image_size=224,
        description="ILSVRC-2012, labels 1..1000 in the records.",
    )
)
register(
    DatasetSpec(
        name="fmow",
        num_classes=62,
        splits={"train": 363_572, "validation": 53_041, "test": 53_473},
        augmentation="imagenet",
        has_boxes=True,
        image_size=448,
        evaluation_split="test",
        description="Functional Map of the World (fMoW-rgb), full images.",
    )
)
register(
    DatasetSpec(
        name="fmow_crops",
        num_classes=62,
        # The release sized epochs of the crop baseline by the full-image
        # count (quirk Q10); the crop counts depend on the boxes kept.
        splits={"train": None, "validation": None, "test": 55_466},
        augmentation="imagenet",
        has_boxes=True,
        image_size=224,
        evaluation_split="test",
        description="fMoW bounding-box crops with context (EN-B0 baseline).",
    )
)
register(
    DatasetSpec(
        name="cub",
        num_classes=200,
        label_offset=1,
        # "validation" is the official test split, as in the release.
        splits={"train": 5_994, "validation": 5_794},
        augmentation="birds",
        has_boxes=True,
        tfds_name="caltech_birds2011",
        tfds_splits={"validation": "test"},
        image_size=448,
        description="CUB-200-2011, labels 1..200 in the records.",
    )
)
register(
    DatasetSpec(
        name="nabirds",
        num_classes=555,
        splits={"train": 23_929, "validation": 24_633},
        augmentation="birds",
        has_boxes=True,
        image_size=448,
        description="NABirds, class ids remapped to contiguous 0..554.",
    )
)

# === Generated benchmark ===
register(
    DatasetSpec(
        name="megapixel_mnist",
        num_classes=10,
        splits={
            "train": megapixel_mnist.DEFAULT_COUNTS["train"],
            "test": megapixel_mnist.DEFAULT_COUNTS["test"],
        },
        augmentation="none",
        has_boxes=True,
        image_size=megapixel_mnist.DEFAULT_CANVAS_SIZE,
        evaluation_split="test",
        description=(
            "Megapixel MNIST as `data_prep.megapixel_mnist` writes it with "
            "its default flags (other counts change the split sizes)."
        ),
    )
)
