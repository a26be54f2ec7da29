"""Converters from each dataset's published raw layout to TFRecord shards.

Each converter module only reads its raw layout and builds a list of work
items (`tnet_tf.data.images.ImageItem`); writing, validation and the
conversion report are shared (`tnet_tf.data.shards.write_sharded`). Every
module exposes a library function `convert(...)` returning one
`ConversionReport` per split, and an absl entry point:

    python -m data_prep.imagenet --raw_dir RAW --output_dir OUT
    python -m data_prep.fmow --raw_dir RAW --output_dir OUT [--crops]
    python -m data_prep.birds --dataset cub --raw_dir RAW --output_dir OUT
    python -m data_prep.verify --data_dir OUT --dataset NAME
"""
