"""Benchmarks of tnet-tf: speed, memory and scaling against the baselines.

Every script prints a table and, as its last line, one JSON object. Each
comparison is a ratio of two cases measured in the same run, with warm-up
calls excluded, repetitions interleaved across cases and medians compared.
Commands and results are in BENCHMARKS.md.

    python -m bench.inference            # item 1: ms/image and peak memory
    python -m bench.scaling              # item 2: 896 -> 3584 px
    python -m bench.training_throughput  # item 3: model.fit images/s
    python -m bench.release_cropping     # item 4: our regions vs the release's cropping

Add `--smoke` for a few-second run on tiny models (what tests/test_bench.py
does).
"""
