"""Location settings as text: the command lines' parser and the tables' form.

A location setting is the number of cells attended per level beyond the
first: `(2, 1)` attends 2 cells of level 1, then 1 cell inside each of them.
`()` is level 1 alone (the release's 1-level evaluation); `(0,)` runs the
location module and attends nothing.

- `parse_locations`: one setting from a command line. The two command lines
  read an empty value differently, and say so through `empty`.
- `format_locations`: the inverse, as written in tables and CSV files.
- `attended_locations`: the number of regions a setting attends.
"""

# What `python -m tnet_tf.profiling --locations ""` means: the preset's own
# setting (`parse_locations(text, empty=MODEL_DEFAULT)`).
MODEL_DEFAULT = None
# What `experiments.* --locations=""` means: level 1 alone, as "none".
LEVEL_1_ALONE = ()


def parse_locations(text, empty=LEVEL_1_ALONE):
    """One `--locations` value: `"2,1"` -> `(2, 1)`, `"none"` -> `()`.

    `"none"` is level 1 alone, the release's 1-level evaluation; `"0"` runs
    the location module and attends nothing.

    Args:
        text: the flag's value (`None` reads as `""`).
        empty: what an empty value means. The experiments' `--locations`
            reads it as level 1 alone (`LEVEL_1_ALONE`, `()`, the default);
            `python -m tnet_tf.profiling --locations` as the preset's own
            setting (`MODEL_DEFAULT`, `None`).

    Returns:
        A tuple of non-negative ints, or `empty`.

    Raises:
        ValueError: not comma-separated ints, or a negative count.
    """
    text = "" if text is None else str(text).strip().lower()
    if not text:
        return empty
    if text == "none":
        return ()
    try:
        setting = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            "A location setting is comma-separated ints such as 2,1 (or "
            f"'none' for level 1 alone), got {text!r}."
        ) from None
    if any(count < 0 for count in setting):
        raise ValueError(
            "A location setting counts cells per level, none negative, got "
            f"{text!r}."
        )
    return setting


def format_locations(setting):
    """Inverse of `parse_locations`; `None` (no setting given: the model's
    default) gives `""`."""
    if setting is None:
        return ""
    return ",".join(str(k) for k in setting) if setting else "none"


def attended_locations(setting):
    """Attended regions of a setting: `k1 + k1*k2 + ...` (`[2, 1]` -> 4)."""
    total, product = 0, 1
    for count in setting or ():
        product *= count
        total += product
    return total


def setting_columns(model, setting):
    """The `locations` and `attended` columns of a result row of `model` at
    `setting` (resolved): empty for a model that attends no region, so that
    tables show its setting as `-`."""
    if not model.config.attends_regions:
        return {"locations": "", "attended": ""}
    return {
        "locations": format_locations(setting),
        "attended": attended_locations(setting),
    }
