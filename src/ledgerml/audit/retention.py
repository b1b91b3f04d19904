"""Retention: how long each event type must be kept, what is now due, and what the log could
prune without rewriting its tree. Reporting only: nothing is deleted here.

    with AuditView.open(paths) as view:
        status = retention_status(view)         # RetentionStatus; .to_json() for the CLI
        status.prunable_below                   # a C2SP tlog-tiles "minimum index" or 0

Defaults (override per type in config.toml, never below the legal floor):

    [audit.retention]
    "decision.recorded" = 400     # days

- Decision logs of high-risk AI systems: at least six months (EU AI Act Art. 19(1) for
  providers, Art. 26(6) for deployers). Floor 183 days.
- Governance records (data sets, runs, models, evaluations, checks, approvals, promotions,
  policies, drift): ten years (EU AI Act Art. 18 documentation; SR 26-2 model inventory
  and validation records).
- `checkpoint.anchored` and `subject.erased`: never due (anchors bind the tree; erasure
  records prove GDPR Art. 17 requests were honoured, Art. 5(2) accountability).

Personal data never enters the ledger; erasing it is key destruction in the vault
(`ledgerml data erase`), and the ledger still verifies afterwards.

Pruning follows C2SP tlog-tiles: a log may stop serving entry bundles below a *minimum
index*; hash tiles and checkpoints stay, so the tree is never rewritten and every later
proof still verifies. The minimum index reported is the longest prefix whose entries are
all due, rounded down to whole 256-entry bundles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ledgerml.audit.view import AuditView
from ledgerml.config import load_config
from ledgerml.errors import InputError

ENTRY_BUNDLE = 256
FOREVER = None
SIX_MONTHS = 183
TEN_YEARS = 3653

GOVERNANCE = (
    "dataset.registered", "run.started", "run.finished", "model.registered",
    "evaluation.recorded", "compliance.checked", "approval.granted", "model.promoted",
    "drift.detected", "retrain.requested", "fl.round", "policy.registered", "model.enrolled",
    "model.documented",
)  # fmt: skip


@dataclass(frozen=True)
class RetentionRule:
    """How long one event type is kept (days; None = never due) and the rule behind it."""

    event_type: str
    keep_days: int | None
    basis: str
    floor_days: int = 0


def default_policy() -> dict[str, RetentionRule]:
    rules = {
        "decision.recorded": RetentionRule(
            "decision.recorded",
            SIX_MONTHS,
            "EU AI Act Art. 19(1) / Art. 26(6): logs of high-risk systems kept ≥ 6 months",
            SIX_MONTHS,
        ),
        "checkpoint.anchored": RetentionRule(
            "checkpoint.anchored", FOREVER, "anchors bind the tree: never pruned"
        ),
        "subject.erased": RetentionRule(
            "subject.erased",
            FOREVER,
            "GDPR Art. 17 erasure, Art. 5(2) accountability: proof the request was honoured",
        ),
    }
    for t in GOVERNANCE:
        rules[t] = RetentionRule(
            t,
            TEN_YEARS,
            "EU AI Act Art. 18 (documentation, 10 years); SR 26-2 inventory and validation",
            SIX_MONTHS,
        )
    return rules


def load_policy(config: dict[str, Any]) -> dict[str, RetentionRule]:
    """The default policy with `[audit.retention]` overrides (days), floors enforced."""
    rules = default_policy()
    section = config.get("audit", {}).get("retention", {})
    if not isinstance(section, dict):
        raise InputError("must be a table of event type = days", field="audit.retention")
    for event_type, days in section.items():
        field = f"audit.retention.{event_type}"
        base = rules.get(event_type)
        if base is None or base.keep_days is None:
            raise InputError("not an event type with a configurable retention", field=field)
        if not isinstance(days, int) or isinstance(days, bool) or days < base.floor_days:
            raise InputError(f"must be a whole number of days ≥ {base.floor_days}", field=field)
        rules[event_type] = RetentionRule(
            event_type, days, base.basis + " (configured)", base.floor_days
        )
    return rules


@dataclass(frozen=True)
class TypeRetention:
    event_type: str
    count: int
    oldest: str
    newest: str
    keep_days: int | None
    basis: str
    due: int

    def to_json(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "count": self.count,
            "oldest": self.oldest,
            "newest": self.newest,
            "keep_days": self.keep_days,
            "basis": self.basis,
            "due": self.due,
        }


@dataclass(frozen=True)
class RetentionStatus:
    """Per type: how many entries, how long they are kept, how many are due now."""

    as_of: str
    tree_size: int
    types: tuple[TypeRetention, ...]
    prunable_below: int
    vault_subjects: int | None
    erasures_recorded: int

    @property
    def due(self) -> int:
        return sum(t.due for t in self.types)

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "tree_size": self.tree_size,
            "due": self.due,
            "prunable_below": self.prunable_below,
            "pruning": "report only: a C2SP tlog-tiles minimum index; the tree is never rewritten",
            "vault_subjects": self.vault_subjects,
            "erasures_recorded": self.erasures_recorded,
            "types": [t.to_json() for t in self.types],
        }


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def retention_status(view: AuditView, *, now: datetime | None = None) -> RetentionStatus:
    """What is due under the project's policy at `now` (default: the current time)."""
    now = now or datetime.now(UTC)
    view.refresh()
    policy = load_policy(load_config(view.paths))
    out: list[TypeRetention] = []
    prefix = view.index.watermark
    for event_type, count, oldest, newest in view.index.type_summary():
        rule = policy.get(event_type) or RetentionRule(
            event_type, FOREVER, "no policy for this type: kept"
        )
        due = 0
        if rule.keep_days is not None:
            cutoff = _stamp(now - timedelta(days=rule.keep_days))
            due, _ = view.index.older_than(event_type, cutoff)
            first_kept = view.index.first_at_or_after(cutoff, [event_type])
        else:
            first_kept = view.index.by_type(event_type, limit=1)[0]
        if first_kept is not None:
            prefix = min(prefix, first_kept)
        out.append(
            TypeRetention(event_type, count, oldest, newest, rule.keep_days, rule.basis, due)
        )
    subjects: int | None = None
    if view.paths.vault_db.is_file():
        from ledgerml.storage import Vault

        subjects = len(Vault(view.paths.vault_db).subjects())
    erased = len(view.index.by_type("subject.erased"))
    return RetentionStatus(
        _stamp(now),
        view.index.watermark,
        tuple(out),
        prefix - prefix % ENTRY_BUNDLE,
        subjects,
        erased,
    )


def parse_when(text: str) -> datetime:
    """An RFC 3339 date or date-time (UTC if no offset); InputError naming --as-of."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{text!r} is not an RFC 3339 date/time", field="--as-of") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
