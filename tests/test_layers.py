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
