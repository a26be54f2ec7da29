"""The experiment package's shared pieces: tables, location text, memory."""

import numpy as np
import pytest
import tensorflow as tf

from tnet_tf.experiment import inference
from tnet_tf.experiment import locations
from tnet_tf.experiment import tables


def test_format_table_aligns_first_column_left_then_right_by_default():
    rows = [{"name": "a", "value": 1}, {"name": "longer", "value": 123}]
    columns = [("name", lambda r: r["name"]), ("v", lambda r: r["value"])]
    text = tables.format_table(rows, columns, notes=["", "note"])
    assert text.split("\n") == [
        "name      v",
        "------  ---",
        "a         1",
        "longer  123",
        "",
        "note",
    ]
    left = tables.format_table(rows, columns, align="ll")
    assert left.split("\n")[2] == "a       1  "
    with pytest.raises(ValueError, match="align"):
        tables.format_table(rows, columns, align="lx")


def test_format_table_without_rows_is_the_header():
    columns = [("a", str), ("bb", str)]
    assert tables.format_table([], columns) == "a  bb\n-  --"


def test_parse_locations_says_what_empty_means():
    assert locations.parse_locations("2,1") == (2, 1)
    assert locations.parse_locations("None") == ()
    assert locations.parse_locations("") == locations.LEVEL_1_ALONE == ()
    assert (
        locations.parse_locations(" ", empty=locations.MODEL_DEFAULT) is None
    )
    with pytest.raises(ValueError, match="comma-separated"):
        locations.parse_locations("2;1")
    with pytest.raises(ValueError, match="negative"):
        locations.parse_locations("2,-1")


def test_cpu_peak_memory_sees_an_allocation_inside_the_block():
    with inference.peak_memory(gpu=False) as memory:
        block = np.ones(64 * 2**20, np.uint8)  # 64 MiB, touched
        del block
    assert memory.source in ("cpu_rss", "cpu_ru_maxrss")
    if memory.source == "cpu_rss" and memory.reset:
        assert memory.increase_bytes >= 60 * 2**20
        assert memory.exact


def test_gpu_peak_memory_reads_the_allocator_after_a_reset(monkeypatch):
    calls = []
    info = iter([{"current": 100, "peak": 100}, {"current": 120, "peak": 700}])
    experimental = tf.config.experimental
    monkeypatch.setattr(
        experimental, "reset_memory_stats", lambda device: calls.append(device)
    )
    monkeypatch.setattr(
        experimental, "get_memory_info", lambda device: next(info)
    )
    with inference.peak_memory(gpu=True) as memory:
        assert memory.start_bytes == 100
    assert calls == ["GPU:0"]
    assert (memory.peak_bytes, memory.increase_bytes) == (700, 600)
    assert memory.source == "gpu" and memory.exact
