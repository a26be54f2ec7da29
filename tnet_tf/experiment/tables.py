"""Text tables and CSV files: the one table formatter of the project.

- `format_table`: a text table from rows and `(header, cell)` columns; the
  verbs' tables, the demo's, `python -m tnet_tf.profiling` and the
  benchmarks (`bench.common`) print with it.
- `SETTING_COLUMNS`, `billions`: the columns the evaluation and profile
  tables share (model, input, location setting) and their FLOPs format.
- `write_csv`, `read_csv`: dict rows to and from CSV files.
"""

import csv
import os

from tnet_tf import viz

LEFT, RIGHT = "l", "r"


def format_table(rows, columns, notes=(), align=None):
    """A text table: `columns` is a list of `(header, function of a row)`.

    Cells are `str(cell(row))`; columns are two spaces apart, and a line of
    dashes follows the header.

    Args:
        rows: anything the column functions read (dicts, lists).
        columns: `(header, cell)` pairs, `cell(row)` giving a row's value.
        notes: lines added below the table.
        align: one letter per column, `"l"` (left-aligned, padded on the
            right) or `"r"`; default: the first column left, the others
            right.

    Returns:
        The table as one string (no final newline).
    """
    align = align or LEFT + RIGHT * (len(columns) - 1)
    if len(align) != len(columns) or set(align) - {LEFT, RIGHT}:
        raise ValueError(
            f"`align` needs one of 'l', 'r' per column ({len(columns)}), "
            f"got {align!r}."
        )
    lines = [[str(header) for header, _ in columns]]
    lines += [[str(cell(row)) for _, cell in columns] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    text = []
    for index, line in enumerate(lines):
        cells = [
            cell.ljust(width) if side == LEFT else cell.rjust(width)
            for cell, width, side in zip(line, widths, align)
        ]
        text.append("  ".join(cells))
        if index == 0:
            text.append("  ".join("-" * width for width in widths))
    return "\n".join(text + list(notes))


def billions(value):
    """A count in billions to 3 decimals (`""` for a missing value)."""
    return "" if value in ("", None) else f"{float(value) / 1e9:.3f}"


# The first columns of the evaluation and profile tables: which model, input
# and location setting a row is about.
SETTING_COLUMNS = [
    ("Model", lambda r: r["model"]),
    ("Input", lambda r: r["image_size"]),
    ("#Locs", lambda r: r["attended"] if r["locations"] else "-"),
    ("Setting", lambda r: r["locations"] or "-"),
]


def write_csv(path, rows):
    """Writes dict rows (columns in first-seen order) and returns `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    viz.attention_csv(path, rows)
    return path


def read_csv(path):
    """The rows of a CSV file as dicts of strings."""
    with open(path, newline="") as file:
        return list(csv.DictReader(file))
