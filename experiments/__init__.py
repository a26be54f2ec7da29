"""Entry points of the experiments: `python -m experiments.<task>`.

Each module parses flags, resolves a recipe (`tnet_tf.recipes`) and calls
one function of `tnet_tf.experiment`:

- `train`: train a recipe (any preset) under a distribution strategy.
- `evaluate`: top-1 / top-5 at several location settings; table + CSV.
- `profile`: params, multiply-adds, ms/image, peak memory per setting.
- `export`: SavedModel + `.keras` from a checkpoint.
- `predict`: one image -> top-5 classes + a PNG of the attended boxes.
- `convert_release`: one of the authors' released checkpoints -> `.keras`.
- `visualize`: attention grid and CSV of a split; accuracy-vs-FLOPs plot.

Common flags are declared once in `experiments.flags`. Importing any of
these modules defines flags but parses nothing and builds nothing. The
on-disk layout they share is described in WORKSPACE.md.
"""
