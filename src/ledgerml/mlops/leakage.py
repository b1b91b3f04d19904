"""Leakage and identifier screens on a training window: features a fraud model must not use.

Why: a column that alone nearly separates the label (the simulator's fraud scenario, a
chargeback flag filled in after the fact) gives the model and both baselines AUPRC 1.000
on any split, and every benchmark rule passes on a 0/0 ratio (issue 15). An identifier
(customer, terminal, account number) is personal data or a proxy for it even when
nobody passed `--pii`. Both are found on the training window only, recorded in
`run.started` (`params.screen`) and read by the `fraud-model` pack.

    screen = screen_features(x, y, names)      # x: (rows, features) float64, time-ordered
    screen.leaky, screen.id_like, screen.to_json()
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledgerml.errors import DataWarning

#: A single feature whose best one-sided ranking reaches this AUPRC "nearly separates" the
#: label. Chosen a priori, not tuned: on ULB the best single feature reaches about 0.5, a
#: column derived from the label reaches 1.0.
LEAK_AUPRC = 0.95
#: Column-name words that mark an identifier (split on _, -, space and camelCase).
ID_WORDS = frozenset(
    {"id", "ids", "iban", "pan", "ssn", "email", "phone", "account", "acct", "uuid", "guid"}
)
#: Value test for unnamed identifiers: whole numbers, at least this many distinct values,
#: densely covering their range (ids are issued in sequence), and not increasing with time.
ID_MIN_DISTINCT = 1000
ID_MAX_RANGE_RATIO = 1.5
TIME_LIKE_SHARE = 0.99


class LeakageWarning(DataWarning):
    """A feature nearly separates the label, or looks like an identifier."""


@dataclass(frozen=True)
class Screen:
    """What the screens found: (feature, single-feature AUPRC) above the bar, identifiers."""

    leaky: tuple[tuple[str, float], ...]
    id_like: tuple[str, ...]
    best: tuple[str, float] | None  # the single best feature, for the record

    def to_json(self) -> dict[str, Any]:
        return {
            "leak_auprc": LEAK_AUPRC,
            "leaky": [{"feature": n, "auprc": a} for n, a in self.leaky],
            "id_like": list(self.id_like),
            "best_single_feature": None
            if self.best is None
            else {"feature": self.best[0], "auprc": self.best[1]},
        }


def _words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w.lower() for w in re.split(r"[\s_\-.]+", spaced) if w}


def id_like_by_name(names: Sequence[str]) -> list[str]:
    """Features whose name says identifier (customer_id, TERMINAL_ID, iban, accountNo…)."""
    return [n for n in names if _words(n) & ID_WORDS]


def _id_like_by_values(col: Any) -> bool:
    import numpy as np

    v = col[~np.isnan(col)]
    if len(v) < ID_MIN_DISTINCT or not np.all(v == np.round(v)):
        return False
    distinct = len(np.unique(v))
    if distinct < ID_MIN_DISTINCT:
        return False
    if (v.max() - v.min() + 1) > ID_MAX_RANGE_RATIO * distinct:
        return False
    rising = float(np.mean(np.diff(v) >= 0))
    return rising < TIME_LIKE_SHARE  # a counter that grows with time is a clock, not an id


def single_feature_auprc(col: Any, y: Any) -> tuple[float, int]:
    """(AUPRC, direction) of one feature ranked in its better direction (+1 on a tie), NaN
    as 0: the screen's measure, and how the rules baseline picks its feature."""
    import numpy as np

    from ledgerml.mlops._metrics import average_precision_both_ways

    up, down = average_precision_both_ways(np.nan_to_num(col), y)
    return (up, 1) if up >= down else (down, -1)


def screen_features(x: Any, y: Any, names: Sequence[str]) -> Screen:
    """Single-feature AUPRC (best direction, NaN as 0) and identifier tests per column."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    leaky: list[tuple[str, float]] = []
    best: tuple[str, float] | None = None
    id_like = set(id_like_by_name(names))
    for i, name in enumerate(names):
        col = np.asarray(x[:, i], dtype=np.float64)
        ap = round(float(single_feature_auprc(col, y)[0]), 6)
        if best is None or ap > best[1]:
            best = (name, ap)
        if ap >= LEAK_AUPRC:
            leaky.append((name, ap))
        if name not in id_like and _id_like_by_values(col):
            id_like.add(name)
    return Screen(tuple(leaky), tuple(n for n in names if n in id_like), best)


def warnings_of(screen: Screen) -> list[str]:
    """One line per finding, naming columns and figures only (never a value)."""
    out = [
        f"feature {n!r} alone reaches AUPRC {a:.3f} on the training window: it nearly "
        "separates the label (leakage?); the fraud-model pack fails on it"
        for n, a in screen.leaky
    ]
    out += [
        f"feature {n!r} looks like an identifier (customer, terminal, account): personal "
        "data or a proxy for it; the fraud-model pack's no-PII rule fails on it"
        for n in screen.id_like
    ]
    return out


def screen_and_warn(
    x: Any, y: Any, names: Sequence[str], *, stacklevel: int = 2
) -> tuple[Screen, list[str]]:
    """`screen_features` and its `warnings_of` lines, each also issued as a `LeakageWarning`
    (`stacklevel` as for `warnings.warn`, counted from the caller)."""
    screen = screen_features(x, y, names)
    found = warnings_of(screen)
    for line in found:
        warnings.warn(line, LeakageWarning, stacklevel=stacklevel + 1)
    return screen, found
