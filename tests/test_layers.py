"""The layer rule of DESIGN.md, checked on every import in `src/ledgerml` (lazy ones too).

    crypto <- ledger, storage, chain <- mlops, compliance, federated <- serving, audit, cli

An import may point down or sideways within its layer, never up: `ledger` must not
learn about models, `serving` must not be needed by `mlops`. `crypto` imports nothing
of ours; `faults` (fault-injection kill points) is called from every layer, so it too
imports nothing of ours.

`api` (the Python front door: `ledgerml.open()`, `Project`) is the top layer beside `cli`
and `serving`, which it wraps. One exception, checked here by name: the package's
`__init__` imports `api` inside its module `__getattr__`, so `ledgerml.open()` works
while `import ledgerml` (which every layer does for `__version__`) loads nothing: for
those importers `__init__` is still a leaf at layer 0.

No cycles either: the graph of `ledgerml` modules, an edge for every import anywhere in a
file (function-local and `TYPE_CHECKING` ones too), has none. A cycle that stays inside
one layer passes the layer rule but still makes import order matter and the two modules
one unit; the usual cure is to move the shared part down (`column_array` into
`mlops.models`) or the code that joins both up (the retrain loop into `retrain`). The one
allowed edge is the lazy front door above: `ledgerml` -> `ledgerml.api`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ledgerml"

#: Each top-level module or package of `ledgerml` and its layer (0 is the bottom).
LAYER: dict[str, int] = {
    "__init__": 0,
    "crypto": 0,
    "faults": 0,
    "errors": 1,  # re-exports crypto's exceptions under the usual path
    "config": 1,
    "tables": 1,  # reads Parquet without the dataset scanner (pyarrow only)
    "ledger": 2,
    "storage": 2,
    "chain": 2,
    "datasets": 2,
    "witness": 2,  # C2SP witness and publisher: crypto, ledger, config, errors only
    "mlops": 3,
    "compliance": 3,
    "federated": 3,
    "serving": 4,
    "audit": 4,
    "cli": 4,
    "mlflow_plugin": 4,  # imports mlflow (its own environment, docs/mlflow.md)
    "demo": 4,
    "retrain": 4,  # drift verdict and retrain loop: joins mlops and compliance (orchestration)
    "api": 4,
}
#: (importer, imported) pairs allowed against the rule, each explained in the docstring.
EXCEPTIONS = {("__init__", "api")}
#: These import nothing of ours at all.
LEAVES = {"crypto", "faults"}
#: (importer, imported) module edges left out of the cycle check, explained in the docstring.
CYCLE_EXCEPTIONS = {("ledgerml", "ledgerml.api")}


def _unit(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Top-level `ledgerml` units that `path` imports, anywhere in the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "ledgerml":  # `from ledgerml import config`
                names = [f"ledgerml.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "ledgerml":
                out.add(parts[1] if len(parts) > 1 else "__init__")
    return out


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_unit_has_a_layer() -> None:
    """A new top-level package must be placed in a layer here before it can be used."""
    units = {_unit(p) for p in _sources()}
    assert units <= set(LAYER), f"place these in LAYER: {sorted(units - set(LAYER))}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    unit = _unit(path)
    for target in _imports(path) - {unit}:
        if target not in LAYER or (unit, target) in EXCEPTIONS:
            continue  # a name that is not one of our units (caught by the test above)
        assert unit not in LEAVES or target == "__init__", (
            f"{path.relative_to(SRC)} imports ledgerml.{target}: {unit} imports nothing of ours"
        )
        assert LAYER[target] <= LAYER[unit], (
            f"{path.relative_to(SRC)} ({unit}, layer {LAYER[unit]}) imports ledgerml.{target} "
            f"(layer {LAYER[target]}): imports must point down"
        )


def test_the_rule_can_fail(tmp_path: Path) -> None:
    """The checker sees an upward import, including one hidden inside a function."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ledgerml.serving.app import create_app\n")
    assert _imports(bad) == {"serving"}


def test_the_front_door_is_lazy() -> None:
    """`import ledgerml` loads no layer above it; the exception is only `__getattr__`'s."""
    import subprocess
    import sys

    code = (
        "import sys, ledgerml; assert 'ledgerml.api' not in sys.modules; "
        "assert callable(ledgerml.open); assert 'ledgerml.api' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    tree = ast.parse((SRC / "__init__.py").read_text())
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not top_level, "ledgerml/__init__.py imports at module level"


def _module(path: Path) -> str:
    """`src/ledgerml/mlops/monitor.py` -> `ledgerml.mlops.monitor`; a package is its `__init__`."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_imports(path: Path, modules: set[str]) -> set[str]:
    """The `ledgerml` modules `path` imports, anywhere in the file.

    `from ledgerml.x import y` imports the module `ledgerml.x.y` when that is one (else the
    name `y` of `ledgerml.x`); relative imports are resolved against the file's package.
    """
    me = _module(path) if path.is_relative_to(SRC) else ""
    package = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in modules else base)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in modules and m != me}


def _import_graph() -> dict[str, set[str]]:
    modules = {_module(p) for p in _sources()}
    graph = {_module(p): _module_imports(p, modules) for p in _sources()}
    for importer, imported in CYCLE_EXCEPTIONS:
        graph[importer].discard(imported)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, …, a], or None (depth-first, in sorted order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path = [root]
        todo = [iter(sorted(graph[root]))]
        state[root] = 1
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_import_cycles() -> None:
    """No chain of imports leads from a module back to itself (lazy imports count)."""
    cycle = _find_cycle(_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_cycle_exceptions_are_current() -> None:
    """An allowed edge that no longer exists is dropped from CYCLE_EXCEPTIONS."""
    modules = {_module(p) for p in _sources()}
    for importer, imported in CYCLE_EXCEPTIONS:
        path = SRC.parent / Path(*importer.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        assert imported in _module_imports(path, modules), (importer, imported)


def test_the_cycle_check_can_fail(tmp_path: Path) -> None:
    """The checker finds a cycle closed by a function-local import, and names it."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from ledgerml.mlops import training\n")
    assert _module_imports(lazy, {"ledgerml.mlops", "ledgerml.mlops.training"}) == {
        "ledgerml.mlops.training"
    }
