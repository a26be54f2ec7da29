"""`"key=value"` edits of a frozen dataclass: model configs and recipes.

The command lines' `--override` and the recipes' `model_overrides` are such
strings; one parser turns them into a validated copy.
"""

import ast
import dataclasses


def apply_overrides(config, overrides):
    """Returns `config` with `"key=value"` strings applied.

    Values are parsed as Python literals (`3`, `0.1`, `(2, 1)`, `None`,
    `True`); anything else is kept as a string.

    Example:
    >>> apply_overrides(tnet_tf.TNetConfig(), ["num_classes=10"])
    """
    known = {field.name for field in dataclasses.fields(config)}
    changes = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(
                f"Override {item!r} is not of the form key=value."
            )
        key, raw = (part.strip() for part in item.split("=", 1))
        if key not in known:
            raise ValueError(
                f"Unknown {type(config).__name__} field '{key}'. "
                f"Known fields: {', '.join(sorted(known))}"
            )
        try:
            changes[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            changes[key] = raw
    return dataclasses.replace(config, **changes)
