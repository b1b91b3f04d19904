"""Per-decision reason codes: which inputs pushed this score up, in words a customer can read.

Why: US Reg B §1002.9 requires the specific principal reasons for an adverse
action, and GDPR Art. 22 (CJEU C-203/22) requires that the effect of the inputs
be intelligible. For XGBoost the contributions are exact TreeSHAP values
(`pred_contribs=True`, in log-odds); for the logistic regression they are
coefficient × standardised value. Each reason compares the value with the
training window's percentiles (stored inside the model file, so the words are
pinned by the model CID).

Usage::

    model = load_model(paths, cid)
    for r in model.explain(table.slice(7, 1), top=3, descriptions={"Amount": "amount"})[0]:
        print(r.text)   # "V14 unusually low (-9.41, below 95% of training rows):
                        #  pushed the score up by 1.82"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np


class Explainable(Protocol):
    """What `reasons` reads from a model: every `ledgerml.mlops.models.Model` (this module
    sits below the model formats, which call it from `Model.explain`)."""

    @property
    def features(self) -> tuple[str, ...]: ...

    @property
    def reference(self) -> Mapping[str, Any]: ...

    def contributions(self, x: np.ndarray) -> np.ndarray: ...

    @property
    def categories(self) -> Mapping[str, tuple[str, ...]]: ...


@dataclass(frozen=True)
class Reason:
    """One principal reason: a feature, its value, how unusual it is, and its push on the score."""

    feature: str
    value: float | None
    contribution: float  # log-odds added to the score by this feature
    #: "unusually low" | "low" | "typical" | "high" | "unusually high" | "missing" | "category"
    level: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "value": self.value,
            "contribution": self.contribution,
            "level": self.level,
            "text": self.text,
        }


def _level(value: float, qs: list[float] | None) -> tuple[str, str]:
    """Place `value` against the training percentiles [p5, p25, p50, p75, p95]."""
    if not qs:
        return "", ""
    p5, p25, _, p75, p95 = qs
    if value < p5:
        return "unusually low", "below 95% of training rows"
    if value < p25:
        return "low", "in the lowest quarter of training rows"
    if value > p95:
        return "unusually high", "above 95% of training rows"
    if value > p75:
        return "high", "in the highest quarter of training rows"
    return "typical", "within the middle half of training rows"


def reasons(
    model: Explainable,
    x: Any,
    top: int = 3,
    descriptions: Mapping[str, str] | None = None,
) -> list[list[Reason]]:
    """Top `top` positive contributions per row of `x`, largest first (ties: feature order).

    A row with no positive contribution (the intercept drives its score) still gets one
    reason: the input that lowered the score least."""
    import math

    import numpy as np

    if top < 1:
        from ledgerml.errors import InputError

        raise InputError("must be at least 1", field="top")
    contrib = model.contributions(x)[:, :-1]
    ref = model.reference.get("values") or []
    names = list(model.features)
    cats = model.categories
    described = dict(descriptions or {})
    out: list[list[Reason]] = []
    for row, c in zip(x, contrib, strict=True):
        order = np.argsort(-c, kind="stable")[:top]
        row_reasons: list[Reason] = []
        # No input pushed the score up: the intercept (base rate) drives it. Reg B still
        # needs principal reasons for an adverse decision, so name the inputs that pulled
        # the score down least — those an applicant could move to change the outcome.
        base_driven = len(order) > 0 and float(c[order[0]]) <= 0
        for i in order[:1] if base_driven else order:
            push = float(c[i])
            if push <= 0 and not base_driven:
                break
            raw = float(row[i])
            label = described.get(names[i], names[i])
            if math.isnan(raw):
                level, where, shown = "missing", "", "missing"
                value = None
            elif names[i] in cats and 0 <= int(raw) < len(cats[names[i]]):
                # a category feature: its text, not its code (value keeps the code)
                level, where, shown = "category", "", cats[names[i]][int(raw)]
                value = raw
            else:
                level, where = _level(raw, ref[i] if i < len(ref) else None)
                shown = f"{raw:.4g}"
                value = raw
            detail = f"{shown}, {where}" if where else shown
            phrase = f"{label} {level}" if level and level != "missing" else label
            if level == "missing":
                phrase = f"{label} missing"
            elif level == "category":
                phrase, detail = f"{label} is {shown}", "category"
            text = f"{phrase} ({detail}): pushed the score up by {push:.2f}"
            if base_driven:
                text = (
                    f"no input raised this score (the base rate sets it); {phrase} "
                    f"({detail}) lowered it least ({push:.2f})"
                )
            row_reasons.append(Reason(names[i], value, round(push, 6), level, text))
        out.append(row_reasons)
    return out
