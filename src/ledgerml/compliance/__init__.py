"""Compliance policy packs (TOML) and checking models against them.

    from ledgerml.compliance import available_packs, load_pack, check_model
    result = check_model(paths, cid, "fraud-model")   # one compliance.checked entry (+ chain)

`packs` is light (tomllib only); `check_model` is imported lazily because it pulls the
ledger, and, when a chain is deployed, web3.
"""

from typing import TYPE_CHECKING, Any

from ledgerml.compliance.packs import CHECKS, Pack, PackRule, available_packs, load_pack

if TYPE_CHECKING:
    from ledgerml.compliance.checking import CheckResult, RuleOutcome, check_model

_LAZY = {"CheckResult", "RuleOutcome", "check_model"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from ledgerml.compliance import checking

        return getattr(checking, name)
    raise AttributeError(f"module 'ledgerml.compliance' has no attribute {name!r}")


__all__ = [
    "CHECKS",
    "CheckResult",
    "Pack",
    "PackRule",
    "RuleOutcome",
    "available_packs",
    "check_model",
    "load_pack",
]
