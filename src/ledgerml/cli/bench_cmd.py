"""`ledgerml bench NAME`: run a benchmark from the repository's `bench/` folder.

Benchmarks are measurements, not tests: each prints its figures, writes them
as JSON to `bench/results/NAME.json`, and compares against a baseline measured
in the same run (ratios), because shared machines are noisy.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import platform
import time
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from ledgerml import __version__
from ledgerml.cli._common import console, err_console, print_json
from ledgerml.errors import InputError

BENCH_DIR = Path(__file__).resolve().parents[3] / "bench"


def _available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def _load(name: str) -> ModuleType:
    path = BENCH_DIR / f"bench_{name}.py"
    if not path.is_file():
        known = ", ".join(_available()) or "none found"
        raise InputError(
            f"unknown benchmark {name!r} (available: {known}, all); benchmarks run from a "
            "source checkout",
            field="NAME",
        )
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.path.insert(0, str(BENCH_DIR))
    spec.loader.exec_module(module)
    return module


def _run_one(
    name: str,
    quick: bool,
    quiet: bool,
    soak_minutes: float = 0.0,
    backend: str | None = None,
    model_types: list[str] | None = None,
    seeds: int = 0,
) -> dict[str, Any]:
    module = _load(name)

    def progress(message: str) -> None:
        if not quiet:
            err_console.print(f"[dim]{name}:[/] {message}", highlight=False)

    started = time.perf_counter()
    accepts_progress = "progress" in inspect.signature(module.run).parameters
    kwargs: dict[str, Any] = {"progress": progress} if accepts_progress else {}
    if soak_minutes:  # only `reliability` soaks; others refuse the option
        if "soak_minutes" not in inspect.signature(module.run).parameters:
            raise InputError(f"benchmark {name!r} has no soak", field="--soak-minutes")
        kwargs["soak_minutes"] = soak_minutes
    if backend is not None:  # only `ledger` has storage backends
        if "backend" not in inspect.signature(module.run).parameters:
            raise InputError(f"benchmark {name!r} has no backends", field="--backend")
        kwargs["backend"] = backend
    if model_types:  # only `latency` compares model types
        if "model_types" not in inspect.signature(module.run).parameters:
            raise InputError(f"benchmark {name!r} has no model types", field="--model-type")
        kwargs["model_types"] = model_types
    if seeds:  # only `fl` repeats over seeds
        if "seeds" not in inspect.signature(module.run).parameters:
            raise InputError(f"benchmark {name!r} has no seeds", field="--seeds")
        kwargs["seeds"] = seeds
    figures = module.run(quick=quick, **kwargs)
    return {
        "benchmark": name,
        "ledgerml": __version__,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "cpu_count": __import__("os").cpu_count(),
            "platform": platform.platform(),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "results": figures,
    }


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        name: Annotated[str, typer.Argument(help="ledger, store, chain, … or all")],
        quick: Annotated[
            bool, typer.Option("--quick", help="Smaller sizes, for a smoke run.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
        output: Annotated[
            Path | None,
            typer.Option("-o", "--output", help="Results folder (default bench/results)."),
        ] = None,
        soak_minutes: Annotated[
            float,
            typer.Option("--soak-minutes", help="reliability: also soak `serve` this long."),
        ] = 0.0,
        backend: Annotated[
            str | None,
            typer.Option("--backend", help="ledger: sqlite (default) or postgres."),
        ] = None,
        model_type: Annotated[
            list[str] | None,
            typer.Option(
                "--model-type", help="latency: lightgbm, onnx, sklearn (XGBoost is the baseline)."
            ),
        ] = None,
        seeds: Annotated[
            int,
            typer.Option(
                "--seeds", help="fl: only the clean run, for K seeds, with 95% t-intervals."
            ),
        ] = 0,
    ) -> None:
        """Run a benchmark; print and save its figures as JSON."""
        if seeds == 1 or seeds < 0:
            raise InputError("must be at least 2 (a t-interval needs two seeds)", field="--seeds")
        if soak_minutes < 0:
            raise InputError("must be >= 0 minutes", field="--soak-minutes")
        if backend not in (None, "sqlite", "postgres"):
            raise InputError("must be sqlite or postgres", field="--backend")
        from ledgerml.mlops.models import names as model_names

        for t in model_type or []:
            if t not in model_names() or t == "logreg":
                known = ", ".join(n for n in model_names() if n != "logreg")
                raise InputError(f"unknown model type {t!r} (known: {known})", field="--model-type")
        names = _available() if name == "all" else [name]
        out_dir = output or BENCH_DIR / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        collected = []
        for n in names:
            result = _run_one(n, quick, as_json, soak_minutes, backend, model_type, seeds)
            suffix = f"-{backend}" if backend not in (None, "sqlite") else ""
            suffix += "-models" if model_type else ""
            suffix += "-seeds" if seeds else ""
            path = out_dir / f"{n}{suffix}{'-quick' if quick else ''}.json"
            path.write_text(json.dumps(result, indent=2) + "\n")
            collected.append(result)
            if not as_json:
                console.print(f"[bold]{n}[/] ({result['seconds']}s) -> {path}")
                console.print_json(json.dumps(result["results"]))
        if as_json:
            print_json(collected[0] if len(collected) == 1 else collected)
