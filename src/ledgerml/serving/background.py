"""Work the decision service does beside requests: follow promotions, anchor checkpoints.

    jobs = BackgroundJobs.start(service, refresh_every_s=2.0, anchor_every_s=60.0)
    ...
    jobs.stop()          # at shutdown, before the service closes its ledger

Both run in daemon threads, never on the request path:

* **Alias refresh.** `ledgerml promote` (another process) appends `model.promoted`; the
  service reads entries appended since its last scan every `refresh_every_s`. Such an
  entry is only a hint: it triggers a read-only look at the ModelRegistry contract (see
  `DecisionService.read_gate`), which alone decides what an alias serves; hints the chain
  does not confirm are ignored and counted. The gate is also re-read every
  `GATE_RECHECK_S` in case a promotion's ledger mirror is missing. A newly allowed model
  is loaded *before* the alias switches to it, so no request pays for the load and no
  restart is needed.
* **Anchoring.** Every `anchor_every_s`, when the log grew, the latest signed
  checkpoint is posted to the AuditAnchor contract (`mlops.anchoring.anchor`), which
  also appends the `checkpoint.anchored` mirror entry. Off when 0 or when the project
  has no chain deployment. A failure is counted and reported (`/healthz`,
  `/metrics`), and retried at the next period: decisions never wait for the chain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledgerml.mlops import has_deployment
from ledgerml.serving.decisions import DecisionService

#: Re-read the gate this often even without a hint in the log (a mirror append can fail).
GATE_RECHECK_S = 60.0


@dataclass
class JobStatus:
    """What a periodic job last did (read by /healthz and /metrics)."""

    name: str
    every_s: float
    runs: int = 0
    failures: int = 0
    last_ok_at: float | None = None
    last_error: str | None = None
    last_result: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "every_s": self.every_s,
            "runs": self.runs,
            "failures": self.failures,
            "last_ok_at": self.last_ok_at,
            "last_error": self.last_error,
            **self.last_result,
        }


class _Periodic:
    """Call `fn` every `every_s` seconds in a daemon thread until stopped."""

    def __init__(self, status: JobStatus, fn: Callable[[], dict[str, Any] | None]) -> None:
        self.status, self._fn = status, fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=status.name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.status.every_s):
            try:
                result = self._fn()
            except Exception as exc:  # reported, retried next period
                self.status.failures += 1
                self.status.last_error = f"{type(exc).__name__}: {exc}"
            else:
                self.status.last_ok_at = time.time()
                self.status.last_error = None
                if result is not None:
                    self.status.last_result = result
            self.status.runs += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class BackgroundJobs:
    """The service's periodic jobs; `stop()` joins them (an anchor in flight completes)."""

    def __init__(self, jobs: list[_Periodic]) -> None:
        self._jobs = jobs

    @classmethod
    def start(
        cls, service: DecisionService, *, refresh_every_s: float, anchor_every_s: float
    ) -> BackgroundJobs:
        jobs = []
        if refresh_every_s > 0:
            jobs.append(
                _Periodic(JobStatus("alias-refresh", refresh_every_s), lambda: _refresh(service))
            )
        if anchor_every_s > 0 and has_deployment(service.paths):
            anchored = _AnchorJob(service)
            jobs.append(_Periodic(JobStatus("anchor", anchor_every_s), anchored))
        return cls(jobs)

    @property
    def status(self) -> dict[str, JobStatus]:
        return {job.status.name: job.status for job in self._jobs}

    def stop(self) -> None:
        for job in self._jobs:
            job.stop()


def _refresh(service: DecisionService) -> dict[str, Any]:
    """Read new entries, and the gate when they hint at a promotion (or it is time to)."""
    last = service.gate.last_read_at
    stale = last is None or time.time() - last >= GATE_RECHECK_S
    service.refresh(preload=True, gate=True if stale else None)
    return {"aliases": dict(service.aliases)}


class _AnchorJob:
    """Anchor the newest checkpoint when the log grew since the last anchor."""

    def __init__(self, service: DecisionService) -> None:
        self.service = service
        self.settled_size = -1  # a size at which there was nothing new to anchor

    def __call__(self) -> dict[str, Any] | None:
        from ledgerml.mlops.anchoring import anchor

        size = self.service.ledger.size()
        if size == self.settled_size:
            return None
        result = anchor(self.service.paths)
        # After a real anchor the log holds our own `checkpoint.anchored` entry: the next
        # period asks again, and `anchor` answers "already anchored" without a transaction
        # unless decisions arrived meanwhile.
        self.settled_size = size if result.already_anchored else -1
        return {
            "anchored_tree_size": result.tree_size,
            "tx_hash": result.tx_hash,
            "already_anchored": result.already_anchored,
        }
