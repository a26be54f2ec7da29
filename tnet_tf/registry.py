"""A small name -> object registry shared by backbones, presets and recipes."""


class Registry:
    """Maps names to objects (usually builder functions or configs).

    Args:
        kind: what the registry holds, used in error messages
            (e.g. `"backbone"`, `"preset"`).

    Example:
    >>> presets = Registry("preset")
    >>> presets.register("tiny", {"num_classes": 2})
    >>> presets.get("tiny")
    {'num_classes': 2}
    """

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name, obj=None):
        """Registers `obj` under `name`; without `obj`, works as a decorator."""
        if obj is None:
            return lambda fn: self.register(name, fn)
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"A {self.kind} name must be a non-empty string, got {name!r}."
            )
        if name in self._entries:
            raise ValueError(
                f"The {self.kind} '{name}' is already registered."
            )
        self._entries[name] = obj
        return obj

    def get(self, name):
        """Returns the object registered as `name`; raises `ValueError` if unknown."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"Unknown {self.kind} '{name}'. Available: {', '.join(self.names())}"
            ) from None

    def names(self):
        """Sorted list of registered names."""
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries
