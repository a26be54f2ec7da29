"""What every absl entry point shares (experiments/ and data_prep/): its
--help and how a console script runs it."""

import sys

from absl import app
from absl import flags


def declare_key_flags(module_name, *names):
    """Declares the shared flags `names` key flags of `module_name`.

    absl's --help lists the flags of the main module and its key flags
    only (--helpfull lists all, TensorFlow's included). `module_name` is
    the caller's `__name__`; `__main__` (`python -m`) stands for the file
    run, as absl's own `declare_key_flag` resolves it.
    """
    module = sys.argv[0] if module_name == "__main__" else module_name
    for name in names:
        flags.FLAGS.register_key_flag_for_module(module, flags.FLAGS[name])


def run_app(main, module_name):
    """Runs `main` as the absl app of module `module_name` on sys.argv.

    Under a console script (setup.py) `__main__` is the script, with no
    docstring or flags: `--help` shows the module's instead, as under
    `python -m`.
    """
    if module_name != "__main__":
        script = sys.modules["__main__"]
        script.__doc__ = script.__doc__ or sys.modules[module_name].__doc__
        for flag in flags.FLAGS.get_key_flags_for_module(module_name):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)
