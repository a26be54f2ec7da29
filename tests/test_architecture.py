"""The shape of the library: small modules, imports pointing one way, and
no caller asking which kind of model it holds."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "tnet_tf"
MAX_LINES = 400
# Callers that ask for the model's type instead of using its contract.
MODEL_TYPE_QUESTIONS = re.compile(
    r"isinstance\([^)]*\b(TNet|BaselineClassifier)\b"
    r"|hasattr\([^)]*[\"']location_module[\"']"
    r"|inspect\.signature\([^)]*\.call\b"
)
SCANNED = ("tnet_tf", "experiments", "bench", "data_prep")


def _python_files(*folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_level_imports(path, modules):
    """Modules of `modules` imported at module level by `path`: `from
    package import module` counts as the module, not the package (whose
    `__init__` Python runs first for any of its modules). Imports inside
    functions run later and cannot form an import-time circle."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return found & set(modules)


def test_no_library_module_is_over_the_line_limit():
    long = {
        str(path.relative_to(ROOT)): count
        for path in _python_files("tnet_tf")
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_library_imports_form_no_circle():
    modules = {_module_name(p): p for p in _python_files("tnet_tf")}
    graph = {
        name: _module_level_imports(path, modules)
        for name, path in modules.items()
    }
    visiting, done, circles = [], set(), []

    def visit(name):
        if name in done:
            return
        if name in visiting:
            circles.append(visiting[visiting.index(name) :] + [name])
            return
        visiting.append(name)
        for child in sorted(graph[name]):
            visit(child)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert not circles, circles


def test_only_the_model_package_asks_for_a_model_type():
    offenders = []
    for path in _python_files(*SCANNED):
        if path.is_relative_to(LIBRARY / "models"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if MODEL_TYPE_QUESTIONS.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line}")
    assert not offenders, "\n".join(offenders)


def test_the_traversal_fits_on_one_screen():
    source = (LIBRARY / "models" / "tnet.py").read_text()
    tree = ast.parse(source)
    (tnet,) = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "TNet"
    ]
    (call,) = [
        node
        for node in tnet.body
        if isinstance(node, ast.FunctionDef) and node.name == "call"
    ]
    assert call.end_lineno - call.lineno + 1 < 60
