"""Evaluate a registered model on its held-out time window, next to two baselines, on the ledger.

Why: a fraud model earns its place only against what it replaces. In one run we
score the model, a logistic-regression baseline and a transparent rules baseline
on the same held-out window (rows after the training split, in time order) and
record all of it as `evaluation.recorded`, with PR and FPR-vs-recall plots in the CAS.

Baselines (both trained on the model's own training window):

* `logreg`: scikit-learn LogisticRegression (lbfgs, C=1) on standardised features,
  missing values filled with the training medians;
* `rules`: the single feature threshold a fraud analyst would write down — the
  feature and direction (flag when high, or when low) with the best AUPRC on the
  training window; its score is that feature, turned into a probability by a
  one-feature logistic fit (Platt scaling) so calibration can be compared too.

Metric keys (read by the policy packs; keep them): `auprc`, `roc_auc`,
`fp_at_80_recall`, `fpr_at_80_recall`, `precision_at_100`, `brier`, `ece`,
`fp_ratio_vs_logreg`, `fp_ratio_vs_rules` (the denominators floored at 1).

Usage::

    ev = evaluate_model(paths, model_cid)        # default: the training data set's tail
    ev.metrics["fp_ratio_vs_logreg"], ev.baselines["rules"]["auprc"], ev.plots["pr_curve"]
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger import open_ledger
from ledgerml.ledger.events import validate_body
from ledgerml.mlops import _metrics
from ledgerml.mlops.leakage import screen_and_warn, single_feature_auprc
from ledgerml.mlops.training import (
    Progress,
    load_model,
    load_table,
    model_info,
    prepare,
    resolve_dataset,
)
from ledgerml.storage import open_store

PLOT_DPI = 100
PLOT_SIZE = (6.0, 4.5)


@dataclass(frozen=True)
class RulesBaseline:
    """Flag when `feature` is high (direction +1) or low (-1); probability by Platt scaling."""

    feature: str
    direction: int
    slope: float
    intercept: float

    @property
    def description(self) -> str:
        side = "high" if self.direction > 0 else "low"
        return (
            f"flag when {self.feature} is {side} (best single-feature rule on the training window)"
        )

    def predict(self, values: Any) -> Any:
        import numpy as np

        z = self.slope * self.direction * np.nan_to_num(values) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class EvaluationResult:
    """What `evaluation.recorded` holds, plus its ledger index."""

    model_cid: str
    dataset_cid: str
    split: str
    rows: int
    positives: int
    metrics: dict[str, float] = field(hash=False)
    baselines: dict[str, dict[str, float]] = field(hash=False)
    plots: dict[str, str] = field(hash=False)
    rules: str
    seconds: float
    ledger_index: int | None
    #: leakage / identifier findings on the training window (ledgerml.mlops.leakage)
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "warnings": list(self.warnings),
            "model_cid": self.model_cid,
            "dataset_cid": self.dataset_cid,
            "split": self.split,
            "rows": self.rows,
            "positives": self.positives,
            "metrics": self.metrics,
            "baselines": self.baselines,
            "plots": self.plots,
            "rules": self.rules,
            "seconds": self.seconds,
            "ledger_index": self.ledger_index,
        }


def _fit_logreg_baseline(x: Any, y: Any, seed: int) -> Callable[[Any], Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    medians = np.nan_to_num(np.nanmedian(x, axis=0))

    def fill(a: Any) -> Any:
        a = np.array(a, dtype=np.float64, copy=True)
        bad = np.isnan(a)
        if bad.any():
            a[bad] = np.take(medians, np.where(bad)[1])
        return a

    pipe = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    ).fit(fill(x), y)
    return lambda a: pipe.predict_proba(fill(a))[:, 1]


def _fit_rules(x: Any, y: Any, names: list[str]) -> RulesBaseline:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    best: tuple[float, int, int] = (-1.0, 0, 1)
    for i in range(x.shape[1]):
        ap, direction = single_feature_auprc(x[:, i], y)
        if ap > best[0]:
            best = (ap, i, direction)
    _, i, direction = best
    values = direction * np.nan_to_num(x[:, i])
    scale = float(np.std(values)) or 1.0
    platt = LogisticRegression(C=1e6, max_iter=1000).fit((values / scale).reshape(-1, 1), y)
    return RulesBaseline(
        names[i],
        direction,
        float(platt.coef_[0][0]) / scale,
        float(platt.intercept_[0]),
    )


def png_bytes(fig: Any) -> bytes:
    """A figure as PNG at the fixed dpi with no Software tag (same figure, same bytes); closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _plots(curves: dict[str, tuple[Any, Any]]) -> dict[str, bytes]:
    """PR curve and FPR vs recall as PNG; fixed size/dpi and no Software tag -> same bytes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import precision_recall_curve, roc_curve

    out: dict[str, bytes] = {}
    with matplotlib.rc_context({"svg.hashsalt": "ledgerml", "path.simplify": True}):
        fig, ax = plt.subplots(figsize=PLOT_SIZE, dpi=PLOT_DPI)
        for label, (scores, labels) in curves.items():
            p, r, _ = precision_recall_curve(labels, scores)
            ax.step(
                r,
                p,
                where="post",
                label=f"{label} (AUPRC {_metrics.average_precision(scores, labels):.3f})",
            )
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title("Precision-recall, held-out time window")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower left")
        out["pr_curve"] = png_bytes(fig)

        fig, ax = plt.subplots(figsize=PLOT_SIZE, dpi=PLOT_DPI)
        for label, (scores, labels) in curves.items():
            fpr, tpr, _ = roc_curve(labels, scores)
            ax.step(tpr, np.maximum(fpr, 1e-6), where="post", label=label)
        ax.axvline(_metrics.RECALL, color="grey", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("recall")
        ax.set_ylabel("false-positive rate")
        ax.set_title("False-positive rate vs recall (dashed: 80% recall)")
        ax.legend(loc="upper left")
        out["fpr_vs_recall"] = png_bytes(fig)
    return out


@dataclass(frozen=True)
class CoreEvaluation:
    """Metrics, baseline metrics, plot PNGs and the rule: everything before recording."""

    metrics: dict[str, float] = field(hash=False)
    baselines: dict[str, dict[str, float]] = field(hash=False)
    pngs: dict[str, bytes] = field(hash=False)
    rules: RulesBaseline
    #: The scores behind the metrics ("model", "logreg", "rules"): a backtest's interval.
    scores: dict[str, Any] = field(default_factory=dict, hash=False, repr=False)


def evaluate_arrays(
    model: Any,
    train_prep: Any,
    x_test: Any,
    y_test: Any,
    *,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    plots: bool = True,
) -> CoreEvaluation:
    """The computation of `evaluate_model` on arrays (no ledger, no store): the bench uses it."""
    say = progress or (lambda *_: None)
    cut = train_prep.split.train_rows
    names = [n for n, _ in train_prep.features]
    say("scoring the model", 1, 4)
    model_scores = model.predict_proba(x_test)
    say("fitting baselines", 2, 4)
    logreg = _fit_logreg_baseline(train_prep.x[:cut], train_prep.y[:cut], seed)
    rules = _fit_rules(train_prep.x[:cut], train_prep.y[:cut], names)
    logreg_scores = logreg(x_test)
    rules_scores = rules.predict(x_test[:, names.index(rules.feature)])

    say("metrics and plots", 3, 4)
    metrics = _metrics.score_metrics(model_scores, y_test)
    base = {
        "logreg": _metrics.score_metrics(logreg_scores, y_test),
        "rules": _metrics.score_metrics(rules_scores, y_test),
    }
    for m in (metrics, base["logreg"], base["rules"]):
        for name in ("logreg", "rules"):
            # x/0 is undefined (0/0: model and baseline both perfect, e.g. a leaked label):
            # left out of the metrics, so no rule can pass on it (the packs say why)
            if base[name]["fp_at_80_recall"] > 0:
                m[f"fp_ratio_vs_{name}"] = _metrics.fp_ratio(
                    m["fp_at_80_recall"], base[name]["fp_at_80_recall"]
                )
    metrics = {k: round(float(v), 9) for k, v in metrics.items()}
    base = {b: {k: round(float(v), 9) for k, v in m.items()} for b, m in base.items()}
    curves = {
        "model": (model_scores, y_test),
        "logreg baseline": (logreg_scores, y_test),
        "rules baseline": (rules_scores, y_test),
    }
    pngs = _plots(curves) if plots else {}  # a backtest draws one plot of its own
    scores = {"model": model_scores, "logreg": logreg_scores, "rules": rules_scores}
    return CoreEvaluation(metrics, base, pngs, rules, scores)


def evaluate_model(
    paths: ProjectPaths,
    model_cid: str,
    data: str | None = None,
    progress: Progress | None = None,
    *,
    record: bool = True,
) -> EvaluationResult:
    """Model and baselines on the held-out window; records `evaluation.recorded` unless told not.

    `data` defaults to the training data set, whose rows after the recorded split
    are held out. Another data set (a later window) is evaluated whole; the
    baselines are still trained on the model's own training window.
    """
    import time

    import numpy as np

    say = progress or (lambda *_: None)
    t0 = time.perf_counter()
    info = model_info(paths, model_cid)
    if not info.dataset_cids or info.target is None:
        raise InputError("model has no recorded training data set or target", field="MODEL_CID")
    split = info.run_params.get("split") or {}
    time_column = split.get("time_column")
    fraction = float(split.get("train_fraction", 0.8))
    drop = list(info.run_params.get("drop", []))
    train_cid = info.dataset_cids[0]
    eval_cid = train_cid if data is None else resolve_dataset(paths, data).cid
    model = load_model(paths, model_cid)  # before anything heavy: a bad CID fails fast

    say("loading data", 0, 4)
    train_prep = prepare(load_table(paths, train_cid), info.target, time_column, fraction, drop)
    names = [n for n, _ in train_prep.features]
    if names != list(model.features):
        raise InputError("the model's features do not match its training data", field="MODEL_CID")
    cut = train_prep.split.train_rows
    if eval_cid == train_cid:
        x_test, y_test = train_prep.x[cut:], train_prep.y[cut:]
        split_text = f"time holdout: rows after the first {cut} by {time_column or 'row order'}" + (
            f" ({time_column} >= {split.get('boundary')})" if time_column else ""
        )
    else:
        table = load_table(paths, eval_cid)
        missing = [c for c in [*names, info.target] if c not in table.column_names]
        if missing:
            raise InputError(
                f"data set lacks the model's column(s): {', '.join(missing)}", field="--data"
            )
        from ledgerml.mlops.training import column_array, time_order

        order = time_order(table, time_column if time_column in table.column_names else None)
        # the model's own categories: a text value it never saw is unknown (NaN), as in serving
        x_test = np.column_stack(
            [column_array(table, n, model.categories.get(n))[order] for n in names]
        )
        y_test = column_array(table, info.target)[order]
        if np.isnan(y_test).any() or not set(np.unique(y_test).tolist()) <= {0.0, 1.0}:
            raise InputError(f"target {info.target!r} must be 0/1 with no gaps", field="--data")
        split_text = "whole data set (a window other than the training data)"
    if not y_test.sum() > 0:
        raise InputError("the evaluation window has no positive rows", field="--data")

    core = evaluate_arrays(model, train_prep, x_test, y_test, seed=info.seed or 0, progress=say)
    _, found = screen_and_warn(
        train_prep.x[:cut], train_prep.y[:cut], [n for n, _ in train_prep.features]
    )
    metrics, base, pngs, rules = core.metrics, core.baselines, core.pngs, core.rules
    body: dict[str, Any] = {
        "model_cid": model_cid,
        "dataset_cid": eval_cid,
        "split": split_text,
        "metrics": metrics,
        "baselines": base,
        "plots": {k: "b" + "a" * 58 for k in pngs},
    }
    validate_body("evaluation.recorded", body)
    index: int | None = None
    if record:
        store = open_store(paths)
        body["plots"] = {k: store.add_bytes(v).cid for k, v in sorted(pngs.items())}
        with open_ledger(paths) as ledger:
            index = ledger.append("evaluation.recorded", body)
    else:
        from ledgerml.storage.cid import cid_of_bytes

        body["plots"] = {k: cid_of_bytes(v) for k, v in sorted(pngs.items())}
    say("done", 4, 4)
    return EvaluationResult(
        model_cid=model_cid,
        dataset_cid=eval_cid,
        split=split_text,
        rows=len(y_test),
        positives=int(y_test.sum()),
        metrics=metrics,
        baselines=base,
        plots=body["plots"],
        rules=rules.description,
        seconds=round(time.perf_counter() - t0, 3),
        ledger_index=index,
        warnings=tuple(found),
    )
