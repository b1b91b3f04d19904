"""Artifact store benchmark: `store add` throughput next to `sha256sum` of the same file.

    .venv/bin/python bench/bench_store.py [--quick]      # prints JSON
    ledgerml bench store [--quick]

A 1 GiB file (quick: 64 MiB) of random bytes is generated once, so it sits in the
page cache for every contender; each figure is the best of a few runs, because
these machines are noisy, and `sha256sum` is timed in the same run as the baseline.
MB is 10^6 bytes.

Rows:
* `sha256sum`: coreutils, one thread — the reference the goal is set against;
* `openssl_dgst`: `openssl dgst -sha256`, one thread with SHA-NI — a stricter reference
  (coreutils 9.1 here has no SHA-NI code, OpenSSL and so hashlib do);
* `hashlib_stream`: Python hashlib over 16 MiB reads — the one-thread ceiling for us;
* `cid_only`: `cid_of_file`, CID without storing anything;
* `add_batch`: `BlockStore(sync="batch").add_file` into an empty store: hash, write
  every block, one filesystem flush before the root is recorded;
* `add_block`: the default `sync="block"`: every block fsynced before its rename;
* `add_dedup`: adding the same file again (every block already present);
* `cat_verified`: reading it back, every block re-hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledgerml.storage import BlockStore, cid_of_file

GOAL_RATIO = 0.5


def _make_file(path: Path, size: int) -> None:
    piece = 16 << 20
    with path.open("wb") as fh:
        left = size
        while left:
            n = min(piece, left)
            fh.write(os.urandom(n))
            left -= n


def _best(fn: Callable[[], Any], runs: int, before: Callable[[], None] | None = None) -> float:
    """Best wall time of `runs` calls; `before` (untimed) resets state between them."""
    best = float("inf")
    for _ in range(runs):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _hashlib_stream(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(16 << 20)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and return the figures (see the module docstring)."""
    size = (64 << 20) if quick else (1 << 30)
    runs = 3 if quick else 2
    sha256sum = shutil.which("sha256sum")
    with tempfile.TemporaryDirectory(
        prefix="ledgerml-bench-store-", dir=os.environ.get("TMPDIR")
    ) as d:
        tmp = Path(d)
        src = tmp / "artifact.bin"
        _make_file(src, size)
        blocks = tmp / "blocks"

        def fresh() -> None:
            shutil.rmtree(blocks, ignore_errors=True)
            os.sync()  # don't bill this run for the previous run's dirty pages

        results: dict[str, float] = {}
        if sha256sum:
            results["sha256sum"] = _best(
                lambda: subprocess.run([sha256sum, str(src)], check=True, capture_output=True),
                runs,
            )
        openssl = shutil.which("openssl")
        if openssl:
            results["openssl_dgst"] = _best(
                lambda: subprocess.run(
                    [openssl, "dgst", "-sha256", str(src)], check=True, capture_output=True
                ),
                runs,
            )
        results["hashlib_stream"] = _best(lambda: _hashlib_stream(src), runs)
        cid_holder: dict[str, str] = {}
        results["cid_only"] = _best(lambda: cid_holder.update(cid=cid_of_file(src)), runs)
        for mode in ("batch", "block"):
            results[f"add_{mode}"] = _best(
                lambda m=mode: BlockStore(blocks, sync=m).add_file(src),  # type: ignore[misc]
                runs,
                before=fresh,
            )
        store = BlockStore(blocks)
        added = store.add_file(src)
        assert added.cid == cid_holder["cid"], "add and cid_of_file disagree"
        results["add_dedup"] = _best(lambda: store.add_file(src), runs)
        results["cat_verified"] = _best(lambda: sum(len(p) for p in store.cat(added.cid)), runs)
        n_blocks = sum(1 for _ in store.iter_blocks())

    mb = size / 1e6
    rates = {k: round(mb / v, 1) for k, v in results.items()}
    base = rates.get("sha256sum") or rates["hashlib_stream"]
    out: dict[str, Any] = {
        "name": "store",
        "quick": quick,
        "file_bytes": size,
        "blocks": n_blocks,
        "cid": cid_holder["cid"],
        "cpu_count": os.cpu_count(),
        "baseline": "sha256sum" if "sha256sum" in rates else "hashlib_stream",
        "mb_per_s": rates,
        "seconds": {k: round(v, 3) for k, v in results.items()},
        "ratio_to_baseline": {k: round(v / base, 2) for k, v in rates.items()},
        # coreutils sha256sum here has no SHA-NI code; OpenSSL (and so hashlib) does.
        "ratio_to_openssl": (
            {k: round(v / rates["openssl_dgst"], 2) for k, v in rates.items()}
            if "openssl_dgst" in rates
            else None
        ),
        "goal": f"add >= {GOAL_RATIO:.0%} of sha256sum",
    }
    out["goal_met"] = {
        k: out["ratio_to_baseline"][k] >= GOAL_RATIO for k in ("add_batch", "add_block")
    }
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
