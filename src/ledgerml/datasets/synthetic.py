"""A small seeded card-fraud table for tests and benchmarks (never for a model anyone uses).

    fraud_csv(path, rows=20_000, seed=11)   # Time, V1..V6, Amount, Class (~1.5% fraud)

One generator, so the test suite and `bench/` measure the same kind of data.
"""

from __future__ import annotations

from pathlib import Path


def fraud_csv(path: Path, rows: int = 20_000, seed: int = 11) -> Path:
    """Time, six features (three informative, non-linear in one), Amount, Class (~1.5% fraud)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 172_800, rows)).round(1)
    x = rng.normal(size=(rows, 6))
    amount = np.exp(rng.normal(3.2, 1.0, rows)).round(2)
    logit = -5.2 - 1.8 * x[:, 0] + 1.2 * x[:, 1] + 1.5 * (x[:, 2] ** 2 > 2.5) + 0.3 * np.log(amount)
    y = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(int)
    cols = ["Time", *(f"V{i}" for i in range(1, 7)), "Amount", "Class"]
    with path.open("w") as fh:
        fh.write(",".join(cols) + "\n")
        for i in range(rows):
            vals = ",".join(f"{v:.5f}" for v in x[i])
            fh.write(f"{t[i]},{vals},{amount[i]},{y[i]}\n")
    return path
