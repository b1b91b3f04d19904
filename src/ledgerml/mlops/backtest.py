"""Rolling-origin backtest: is the model better than its baselines on *every* later window?

Why: one time split is one draw. A default that wins on the demo's split can lose
5.7x on another (issue 15), and SR 26-2's outcomes analysis and the EU AI Act's
Art. 15 robustness duty ask for evidence across time, not one lucky window. So:
the rows in time order; K consecutive test folds at the end (each `fold_fraction`
of the rows, 1/10 by default); for fold k, train on *everything before it* with the
same parameters and seed, then score the model and the two baselines of
`ledgerml evaluate` (logistic regression and the best single-feature rule, both
trained on the same window) on the fold. Nothing is tuned on a fold: every choice
inside training (rounds, class weight) is made on the fold's training window.

Each fold's FP ratio vs the logistic comes with a 90% paired bootstrap interval
(`_metrics.fp_ratio_interval`: the fold's frauds and legitimate rows resampled apart):
with 20-50 frauds in a window the ratio is decided by two or three of them, and the
interval says whether a fold is worse beyond that luck. The gate still reads the ratio.

One `backtest.recorded` entry holds every fold's numbers, the CID of every model
trained (stored in the CAS) and a plot; same data, parameters and seed give the
same CIDs. The policy packs read it (`FM-BT-*`, `MR-BACKTEST`).

Usage::

    bt = backtest(paths, data="ulb", target="Class", folds=5, seed=0)
    bt.summary["worst_fp_ratio_vs_logreg"], bt.folds[0].model_cid, bt.plot
    bt = backtest(paths, model="bafkrei…")     # the recipe of a trained model
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger import open_ledger
from ledgerml.ledger.events import validate_body
from ledgerml.mlops import _metrics
from ledgerml.mlops._metrics import fp_ratio_interval
from ledgerml.mlops.evaluation import (
    PLOT_DPI,
    PLOT_SIZE,
    _fit_logreg_baseline,
    evaluate_arrays,
    png_bytes,
)
from ledgerml.mlops.training import (
    MODEL_TYPES,
    Prepared,
    Progress,
    Split,
    check_params,
    check_seed,
    fit_model_used,
    load_table,
    model_from_bytes,
    model_info,
    prepare,
    recipe_hash,
    resolve_dataset,
)
from ledgerml.storage import open_store
from ledgerml.storage.cid import cid_of_bytes

#: Default and bounds: 5 folds of 1/10 of the rows leave the first half as the first window.
DEFAULT_FOLDS = 5
MAX_FOLDS = 9
FOLD_FRACTION = 0.1
#: The first training window keeps at least this share of the rows.
MIN_FIRST_WINDOW = 0.1
#: Metrics kept per fold (the rest of `ledgerml evaluate`'s are in its own entry).
FOLD_METRICS = ("auprc", "roc_auc", "fp_at_80_recall", "fp_ratio_vs_logreg", "fp_ratio_vs_rules")


@dataclass(frozen=True)
class FoldResult:
    """One test window: where it lies, the model trained before it, and the three scores."""

    fold: int
    train_rows: int
    test_rows: int
    test_positives: int
    boundary: float | None  # time of the fold's first row
    model_cid: str
    rounds: int | None
    metrics: dict[str, float | None] = field(hash=False)
    baselines: dict[str, dict[str, float | None]] = field(hash=False)
    rules: str
    #: Bootstrap interval of the FP ratio vs the logistic (`_metrics.fp_ratio_interval`).
    interval: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "fold": self.fold,
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "test_positives": self.test_positives,
            "boundary": self.boundary,
            "model_cid": self.model_cid,
            "rounds": self.rounds,
            "metrics": self.metrics,
            "baselines": self.baselines,
            "rules": self.rules,
            "fp_ratio_vs_logreg_interval": self.interval,
        }


@dataclass(frozen=True)
class BacktestResult:
    """What `backtest.recorded` holds, plus its ledger index and the wall time."""

    dataset_cid: str
    model_cid: str | None
    model_type: str
    target: str
    time_column: str | None
    params: dict[str, Any] = field(hash=False)
    seed: int = 0
    recipe: str = ""
    folds: tuple[FoldResult, ...] = ()
    summary: dict[str, float | int | None] = field(default_factory=dict, hash=False)
    plot: str = ""
    seconds: float = 0.0
    ledger_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset_cid": self.dataset_cid,
            "model_cid": self.model_cid,
            "model_type": self.model_type,
            "target": self.target,
            "time_column": self.time_column,
            "params": self.params,
            "seed": self.seed,
            "recipe": self.recipe,
            "folds": [f.to_json() for f in self.folds],
            "summary": self.summary,
            "plot": self.plot,
            "seconds": self.seconds,
            "ledger_index": self.ledger_index,
        }


def fold_bounds(rows: int, folds: int, fold_fraction: float = FOLD_FRACTION) -> list[int]:
    """Start row of each test fold (the last fold also takes the remainder), in time order."""
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= MAX_FOLDS:
        raise InputError(f"must be a whole number from 2 to {MAX_FOLDS}", field="--folds")
    size = int(rows * fold_fraction)
    first = rows - folds * size
    if first < max(10, int(rows * MIN_FIRST_WINDOW)) or size < 10:
        raise InputError(
            f"{folds} folds of {fold_fraction:g} of {rows} rows leave too little to train the "
            "first fold on; use fewer folds",
            field="--folds",
        )
    return [first + k * size for k in range(folds)]


def _summary(folds: Sequence[FoldResult]) -> dict[str, float | int | None]:
    """Median and worst per metric; a fold with an undefined ratio makes the worst undefined."""

    def values(key: str, of: str | None = None) -> list[float | None]:
        return [(f.metrics if of is None else f.baselines[of]).get(key) for f in folds]

    out: dict[str, float | int | None] = {"folds": len(folds)}
    for key, worst in (
        ("auprc", min),
        ("roc_auc", min),
        ("fp_at_80_recall", max),
        ("fp_ratio_vs_logreg", max),
        ("fp_ratio_vs_rules", max),
    ):
        vals = values(key)
        known = [v for v in vals if v is not None]
        out[f"median_{key}"] = round(statistics.median(known), 9) if known else None
        out[f"worst_{key}"] = round(worst(known), 9) if known and len(known) == len(vals) else None
    auprc = [v for v in values("auprc") if v is not None]
    out["auprc_spread"] = round(max(auprc) - min(auprc), 9) if auprc else None
    for base in ("logreg", "rules"):
        ratios = values(f"fp_ratio_vs_{base}")
        out[f"folds_fp_ratio_vs_{base}_le_1"] = sum(1 for r in ratios if r is not None and r <= 1)
        out[f"folds_fp_ratio_vs_{base}_le_0_5"] = sum(
            1 for r in ratios if r is not None and r <= 0.5
        )
        out[f"folds_fp_ratio_vs_{base}_undefined"] = sum(1 for r in ratios if r is None)
    # folds where the whole 90% interval lies on one side of 1: worse (or better) than the
    # logistic beyond what resampling the window's own frauds explains
    bounds = [(f.interval.get("low"), f.interval.get("high")) for f in folds]
    out["folds_fp_ratio_vs_logreg_interval_above_1"] = sum(
        1 for lo, _ in bounds if lo is not None and lo > 1
    )
    out["folds_fp_ratio_vs_logreg_interval_below_1"] = sum(
        1 for _, hi in bounds if hi is not None and hi < 1
    )
    return out


def _plot(folds: Sequence[FoldResult]) -> bytes:
    """False positives at 80% recall per fold, model vs baselines; fixed size, same bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    xs = np.arange(len(folds))
    series = {
        "model": [f.metrics["fp_at_80_recall"] or 0 for f in folds],
        "logreg baseline": [f.baselines["logreg"]["fp_at_80_recall"] or 0 for f in folds],
        "rules baseline": [f.baselines["rules"]["fp_at_80_recall"] or 0 for f in folds],
    }
    with matplotlib.rc_context({"path.simplify": True}):
        fig, ax = plt.subplots(figsize=PLOT_SIZE, dpi=PLOT_DPI)
        width = 0.27
        for i, (label, ys) in enumerate(series.items()):
            ax.bar(xs + (i - 1) * width, np.maximum(ys, 0.5), width, label=label)
        ax.set_yscale("log")
        ax.set_xticks(xs, [f"fold {f.fold}" for f in folds])
        ax.set_ylabel("false positives at 80% recall")
        ax.set_title("Rolling-origin backtest: each fold trained on all rows before it")
        ax.legend(loc="upper left")
        return png_bytes(fig)


def _rounded(m: Mapping[str, Any]) -> dict[str, float | None]:
    return {k: (None if m.get(k) is None else round(float(m[k]), 9)) for k in FOLD_METRICS}


def backtest(
    paths: ProjectPaths,
    *,
    data: str | None = None,
    target: str | None = None,
    model: str | None = None,
    model_type: str = "xgboost",
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    time_column: str | None = "Time",
    drop: Sequence[str] = (),
    folds: int = DEFAULT_FOLDS,
    fold_fraction: float = FOLD_FRACTION,
    record: bool = True,
    progress: Progress | None = None,
    fit: Callable[[Prepared, Progress], tuple[bytes, dict[str, Any]]] | None = None,
) -> BacktestResult:
    """Backtest a training recipe (`data`/`target`/`model_type`/`params`/`seed`) or the recipe
    of a trained `model` (CID); records one `backtest.recorded` unless `record` is False.

    Everything is validated before the first fold is trained; nothing is written on bad input.
    `fit(prep, progress) -> (model bytes, params used)` replaces LedgerML's own training: the
    caller's recipe for a model trained elsewhere (`ledgerml.api.Project.backtest`), with
    `model` the CID it is recorded for and `model_type` the stored format.
    """
    say = progress or (lambda *_: None)
    t0 = time.perf_counter()
    if model is not None and fit is None:
        info = model_info(paths, model, field_name="--model")
        if not info.dataset_cids or info.target is None or info.seed is None:
            raise InputError("the model has no recorded training run to repeat", field="--model")
        run = info.run_params
        model_type = info.model_type
        data, target, seed = info.dataset_cids[0], info.target, info.seed
        time_column = (run.get("split") or {}).get("time_column")
        drop = list(run.get("drop", []))
        params = run.get("requested", {})
    if model_type not in MODEL_TYPES and fit is None:
        raise InputError(f"must be one of {', '.join(MODEL_TYPES)}", field="--model-type")
    if data is None:
        raise InputError("name the data set (--data) or a trained model (--model)", field="--data")
    if target is None:
        raise InputError("name the 0/1 label column", field="--target")
    requested = dict(params or {})
    merged = check_params(model_type, requested) if fit is None else requested
    seed = check_seed(seed)
    record_ds = resolve_dataset(paths, data)
    table = load_table(paths, record_ds.cid)
    whole = prepare(table, target, time_column, 0.5, drop=list(drop))
    n = len(whole.y)
    starts = fold_bounds(n, folds, fold_fraction)
    ends = [*starts[1:], n]
    for k, (a, b) in enumerate(zip(starts, ends, strict=True), start=1):
        if not 0 < whole.y[:a].sum() < a:
            raise InputError(
                f"fold {k}'s training window (first {a} rows) needs both classes", field="--folds"
            )
        if whole.y[a:b].sum() == 0:
            raise InputError(f"fold {k} (rows {a}..{b - 1}) has no positive rows", field="--folds")
    recipe = recipe_hash(
        dataset_cid=record_ds.cid,
        target=target,
        time_column=time_column,
        drop=drop,
        model_type=model_type,
        params=requested,
        seed=seed,
    )
    times = None
    if time_column is not None:
        from ledgerml.mlops.training import column_array, time_order

        times = column_array(table, time_column)[time_order(table, time_column)]

    store = open_store(paths) if record else None
    results: list[FoldResult] = []
    for k, (a, b) in enumerate(zip(starts, ends, strict=True), start=1):
        split = Split(time_column, round(a / n, 6), a, b - a, None)
        x, categories = whole.x, whole.categories
        if categories:
            # text features: each fold learns its categories from its own training window
            # ((a + 0.5) / n puts the cut at row a exactly), never from the rows it is tested on
            fold_prep = prepare(table, target, time_column, (a + 0.5) / n, drop=list(drop))
            x, categories = fold_prep.x, fold_prep.categories
        prep = Prepared(whole.features, x[:b], whole.y[:b], split, categories)

        def tick(stage: str, done: int, total: int, k: int = k) -> None:
            say(f"fold {k}/{folds}: {stage}", done, total)

        if fit is None:
            raw, used = fit_model_used(prep, model_type, requested, seed, tick)
        else:
            raw, used = fit(prep, tick)
        cid = store.add_bytes(raw).cid if store is not None else cid_of_bytes(raw)
        fitted = model_from_bytes(cid, raw)
        tick("scoring model and baselines", 0, 1)
        # `ledgerml evaluate`'s computation: its FP ratios are left out when undefined (x/0)
        core = evaluate_arrays(fitted, prep, x[a:b], whole.y[a:b], seed=seed, plots=False)
        results.append(
            FoldResult(
                fold=k,
                train_rows=a,
                test_rows=b - a,
                test_positives=int(whole.y[a:b].sum()),
                boundary=None if times is None else float(times[a]),
                model_cid=cid,
                rounds=used.get("num_boost_round") if model_type == "xgboost" else None,
                metrics=_rounded(core.metrics),
                baselines={name: _rounded(m) for name, m in core.baselines.items()},
                rules=core.rules.description,
                interval=fp_ratio_interval(
                    core.scores["model"], core.scores["logreg"], whole.y[a:b], seed=[seed, k]
                ),
            )
        )
    summary = _summary(results)
    png = _plot(results)
    body: dict[str, Any] = {
        "dataset_cid": record_ds.cid,
        "model_cid": model,
        "model_type": model_type,
        "target": target,
        "time_column": time_column,
        "drop": list(drop),
        "params": {**merged, "requested": requested},
        "seed": seed,
        "recipe": recipe,
        "fold_fraction": fold_fraction,
        "folds": [f.to_json() for f in results],
        "summary": summary,
        "plot": "b" + "a" * 58,
    }
    validate_body("backtest.recorded", body)
    index: int | None = None
    if store is not None:
        body["plot"] = store.add_bytes(png).cid
        with open_ledger(paths) as ledger:
            index = ledger.append("backtest.recorded", body)
    else:
        body["plot"] = cid_of_bytes(png)
    say("done", 1, 1)
    return BacktestResult(
        dataset_cid=record_ds.cid,
        model_cid=model,
        model_type=model_type,
        target=target,
        time_column=time_column,
        params=body["params"],
        seed=seed,
        recipe=recipe,
        folds=tuple(results),
        summary=summary,
        plot=body["plot"],
        seconds=round(time.perf_counter() - t0, 3),
        ledger_index=index,
    )


def fold_table(result: BacktestResult) -> list[dict[str, Any]]:
    """One row per fold for printing: the model's and the baselines' key figures."""
    rows = []
    for f in result.folds:
        rows.append(
            {
                "fold": f.fold,
                "train_rows": f.train_rows,
                "test_rows": f.test_rows,
                "frauds": f.test_positives,
                "rounds": f.rounds,
                "auprc": f.metrics["auprc"],
                "roc_auc": f.metrics["roc_auc"],
                "fp80": f.metrics["fp_at_80_recall"],
                "fp80_logreg": f.baselines["logreg"]["fp_at_80_recall"],
                "fp80_rules": f.baselines["rules"]["fp_at_80_recall"],
                "ratio_logreg": f.metrics["fp_ratio_vs_logreg"],
                "ratio_logreg_interval": (
                    None
                    if f.interval.get("low") is None
                    else (f.interval["low"], f.interval["high"])
                ),
                "ratio_rules": f.metrics["fp_ratio_vs_rules"],
            }
        )
    return rows


def compare_at_cut(
    table: Any,
    target: str,
    time_column: str | None,
    cut: float,
    *,
    drop: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """XGBoost (`params` over the defaults) trained on the first `cut` of `table` in time
    order, against the logistic baseline on the same rows: false positives at 80% recall on
    all the rest, their ratio and its bootstrap interval. Nothing is recorded.

    Issue 15's second check, on any table: `bench/cuts.py` prints it, and the opt-in tests
    on real ULB and IEEE-CIS data assert on it.
    """
    import time

    t0 = time.perf_counter()
    prep = prepare(table, target, time_column, cut, drop=list(drop))
    a = prep.split.train_rows
    raw, used = fit_model_used(prep, "xgboost", params, seed)
    scores = model_from_bytes("cut", raw).predict_proba(prep.x[a:])
    base = _fit_logreg_baseline(prep.x[:a], prep.y[:a], seed)(prep.x[a:])
    y = prep.y[a:]
    fp, base_fp = _metrics.fp_at_recall(scores, y)[0], _metrics.fp_at_recall(base, y)[0]
    return {
        "cut": cut,
        "train_rows": a,
        "test_rows": len(y),
        "test_frauds": int(y.sum()),
        "rounds": used["num_boost_round"],
        "fp80": fp,
        "fp80_logreg": base_fp,
        "ratio": round(_metrics.fp_ratio(fp, base_fp), 4) if base_fp else None,
        "interval": fp_ratio_interval(scores, base, y, seed=[seed, a]),
        "auprc": round(_metrics.average_precision(scores, y), 4),
        "auprc_logreg": round(_metrics.average_precision(base, y), 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }
