"""Input data: one TFRecord schema, the shared writer, the tf.data pipelines.

- `records`: the record schema (`encode_example`, `parse_example`,
  `validate_example`, shard names).
- `images`, `shards`: robust image re-encoding and the atomic, resumable
  sharded writer the converters of `data_prep/` share.
- `datasets`: a `DatasetSpec` per dataset (`get_spec(name)`, `names()`).
- `augment`: the release's training augmentation and evaluation resize.
- `pipelines`: `make_dataset(...)`, batches of `(images, labels)` for `fit`,
  read by `record_source` or `tfds_source` and checked by `record_checks`.
- `megapixel_mnist`: the generated Megapixel MNIST benchmark, drawn from the
  digits of `mnist_digits` with the random layout of `canvas_layout`.
"""

from tnet_tf.data import augment
from tnet_tf.data import datasets
from tnet_tf.data import images
from tnet_tf.data import megapixel_mnist
from tnet_tf.data import pipelines
from tnet_tf.data import records
from tnet_tf.data import shards
from tnet_tf.data.datasets import DatasetSpec
from tnet_tf.data.datasets import get_spec
from tnet_tf.data.megapixel_mnist import MegapixelMNIST
from tnet_tf.data.pipelines import make_dataset
