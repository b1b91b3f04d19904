"""Compliance policy packs: TOML files that say which rules a model must meet, and why.

Why TOML files and not code: a pack is something a compliance officer reviews and signs
off, so it must be readable, diffable and hashable. Its SHA-256 goes into every
`compliance.checked` entry, so an auditor knows exactly which rules were applied.

    from ledgerml.compliance.packs import load_pack, available_packs
    pack = load_pack("fraud-model")
    for rule in pack.rules: print(rule.id, rule.regulation)

Format (see docs/policy-packs.md)::

    [pack]
    id = "fraud-model"            # name users pass to --policy
    version = 1                   # on-chain policy id is "<id>-v<version>": bump on any change
    description = "..."
    approver_roles = ["risk_approver", "compliance_approver"]
    max_drift_psi = 0.25

    [[rule]]
    id = "FM-PERF-AUPRC"
    regulation = "SR 26-2 / OCC Bulletin 2026-13 ..."
    kind = "metric"               # value read from the model's latest evaluation.recorded
    metric = "auprc"              # metric key (and on-chain metric id)
    comparator = ">="             # ">=" or "<="
    threshold = 0.70
    on_chain = true               # the ModelRegistry contract evaluates it and gates promotion
    description = "..."

    [[rule]]
    id = "FM-NO-PII"
    kind = "check"                # value computed by a named check (compliance.checks)
    check = "no_pii_features"
    metric = "no_pii"             # checks yield 1 (pass) / 0 (fail), or a number
    comparator = ">="             # optional for boolean checks (default ">= 1")
    threshold = 1
    on_chain = true
    [rule.params]                 # optional, passed to the check
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from importlib import resources
from typing import Any

from ledgerml.compliance.checks import CHECKS
from ledgerml.compliance.rules import Pack, PackRule
from ledgerml.errors import InputError

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]{0,31}$")
_PACK_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,27}$")


def _pack_dir() -> Any:
    return resources.files("ledgerml.compliance").joinpath("packs")


def available_packs() -> list[str]:
    """Names of the packs shipped with LedgerML, sorted."""
    return sorted(
        p.name[: -len(".toml")] for p in _pack_dir().iterdir() if p.name.endswith(".toml")
    )


def _need(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(f"missing or not a {kind.__name__}", field=where)
    return value


def _parse_rule(raw: Any, where: str) -> PackRule:
    if not isinstance(raw, dict):
        raise InputError("must be a table", field=where)
    known = {
        "id",
        "regulation",
        "kind",
        "description",
        "metric",
        "comparator",
        "threshold",
        "on_chain",
        "check",
        "params",
    }
    extra = set(raw) - known
    if extra:
        raise InputError(f"unknown keys {sorted(extra)}", field=where)
    rid = _need(raw, "id", str, f"{where}.id")
    if not _ID_RE.match(rid):
        raise InputError(f"{rid!r} is not a short rule id", field=f"{where}.id")
    regulation = _need(raw, "regulation", str, f"{where}.regulation").strip()
    description = _need(raw, "description", str, f"{where}.description").strip()
    kind = raw.get("kind")
    if kind not in ("metric", "check"):
        raise InputError("must be 'metric' or 'check'", field=f"{where}.kind")
    check = raw.get("check")
    if kind == "check":
        if check not in CHECKS:
            raise InputError(
                f"unknown check {check!r} (known: {', '.join(CHECKS)})", field=f"{where}.check"
            )
    elif check is not None:
        raise InputError("only rules of kind 'check' name a check", field=f"{where}.check")
    metric = _need(raw, "metric", str, f"{where}.metric")
    if not _ID_RE.match(metric):
        raise InputError(f"{metric!r} must be 1-32 ASCII id characters", field=f"{where}.metric")
    comparator = raw.get("comparator", ">=" if kind == "check" else None)
    if comparator not in (">=", "<="):
        raise InputError("must be '>=' or '<='", field=f"{where}.comparator")
    threshold = raw.get("threshold", 1 if kind == "check" else None)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
        raise InputError("must be a non-negative number", field=f"{where}.threshold")
    on_chain = raw.get("on_chain", False)
    if not isinstance(on_chain, bool):
        raise InputError("must be true or false", field=f"{where}.on_chain")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise InputError("must be a table", field=f"{where}.params")
    return PackRule(
        id=rid,
        regulation=regulation,
        kind=kind,
        description=description,
        metric=metric,
        comparator=comparator,
        threshold=float(threshold),
        on_chain=on_chain,
        check=check,
        params=params,
    )


def parse_pack(data: bytes, *, source: str = "<pack>") -> Pack:
    """Parse and validate a pack's TOML bytes; InputError names the offending key."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{source}: {exc}", field="pack") from None
    head = doc.get("pack")
    if not isinstance(head, dict):
        raise InputError(f"{source}: missing [pack] table", field="pack")
    pid = _need(head, "id", str, "pack.id")
    if not _PACK_RE.match(pid):
        raise InputError(f"{pid!r}: lowercase letters, digits, '-' (≤ 28)", field="pack.id")
    version = _need(head, "version", int, "pack.version")
    if version < 1:
        raise InputError("must be ≥ 1", field="pack.version")
    roles = head.get("approver_roles")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise InputError("must be a non-empty list of role names", field="pack.approver_roles")
    psi = head.get("max_drift_psi", 0.25)
    if isinstance(psi, bool) or not isinstance(psi, int | float) or psi <= 0:
        raise InputError("must be a positive number", field="pack.max_drift_psi")
    raw_rules = doc.get("rule")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise InputError(f"{source}: a pack needs at least one [[rule]]", field="rule")
    rules = tuple(_parse_rule(r, f"rule[{i}]") for i, r in enumerate(raw_rules))
    for attr in ("id", "metric"):
        seen = [getattr(r, attr) for r in rules]
        dup = {x for x in seen if seen.count(x) > 1}
        if dup:
            raise InputError(f"duplicate {attr} {sorted(dup)}", field=f"rule.{attr}")
    return Pack(
        id=pid,
        version=version,
        description=str(head.get("description", "")).strip(),
        approver_roles=tuple(roles),
        max_drift_psi=float(psi),
        rules=rules,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def load_pack(name: str) -> Pack:
    """A shipped pack by name; an unknown name is bad input naming the available packs."""
    names = available_packs()
    if name not in names:
        raise InputError(
            f"unknown policy pack {name!r} (available: {', '.join(names)})", field="--policy"
        )
    data = _pack_dir().joinpath(f"{name}.toml").read_bytes()
    pack = parse_pack(data, source=f"{name}.toml")
    if pack.id != name:
        raise InputError(f"{name}.toml declares id {pack.id!r}", field="pack.id")
    return pack


__all__ = ["CHECKS", "Pack", "PackRule", "available_packs", "load_pack", "parse_pack"]
