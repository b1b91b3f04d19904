"""MLOps on top of the ledger and the chain: code that needs both lives here (never below).

from ledgerml.mlops import GovernanceService, anchor, trusted_roots

with GovernanceService.open(paths) as gov:      # project's chain + deployment + ledger
    gov.promote(cid, "production")              # tx on chain, `model.promoted` in the log
anchor(paths)                                   # latest checkpoint -> AuditAnchor
ledger.verify(verifiers, trusted=trusted_roots(paths))
"""

from typing import TYPE_CHECKING, Any

# Lazy: importing `ledgerml.mlops` must not load web3 and py-evm (a second of
# start-up) for commands that never touch the chain.
_EXPORTS = {
    "chain_settings": "ledgerml.mlops._chain",
    "has_deployment": "ledgerml.mlops._chain",
    "project_chain": "ledgerml.mlops._chain",
    "AnchorResult": "ledgerml.mlops.anchoring",
    "anchor": "ledgerml.mlops.anchoring",
    "anchored": "ledgerml.mlops.anchoring",
    "trusted_roots": "ledgerml.mlops.anchoring",
    "GovernanceService": "ledgerml.mlops.governance",
    "Mirrored": "ledgerml.mlops.governance",
    "find_model_registered": "ledgerml.mlops.governance",
    "read_gate": "ledgerml.mlops.governance",
    "PromotionClaim": "ledgerml.mlops.governance",
    "THRESHOLD_METRIC": "ledgerml.mlops.governance",
    "train_model": "ledgerml.mlops.training",
    "load_model": "ledgerml.mlops.training",
    "TrainResult": "ledgerml.mlops.training",
    "evaluate_model": "ledgerml.mlops.evaluation",
    "EvaluationResult": "ledgerml.mlops.evaluation",
    "build_model_card": "ledgerml.mlops.model_card",
    "ModelCard": "ledgerml.mlops.model_card",
    "register_dataset": "ledgerml.mlops.datasets",
    "erase_subject": "ledgerml.mlops.datasets",
    "average_precision": "ledgerml.mlops._metrics",
}

if TYPE_CHECKING:
    from ledgerml.mlops._chain import chain_settings, has_deployment, project_chain
    from ledgerml.mlops._metrics import average_precision
    from ledgerml.mlops.anchoring import AnchorResult, anchor, anchored, trusted_roots
    from ledgerml.mlops.datasets import erase_subject, register_dataset
    from ledgerml.mlops.evaluation import EvaluationResult, evaluate_model
    from ledgerml.mlops.governance import (
        THRESHOLD_METRIC,
        GovernanceService,
        Mirrored,
        PromotionClaim,
        find_model_registered,
        read_gate,
    )
    from ledgerml.mlops.model_card import ModelCard, build_model_card
    from ledgerml.mlops.training import TrainResult, load_model, train_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ledgerml.mlops' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "THRESHOLD_METRIC",
    "AnchorResult",
    "EvaluationResult",
    "GovernanceService",
    "Mirrored",
    "ModelCard",
    "PromotionClaim",
    "TrainResult",
    "anchor",
    "anchored",
    "average_precision",
    "build_model_card",
    "chain_settings",
    "erase_subject",
    "evaluate_model",
    "find_model_registered",
    "has_deployment",
    "load_model",
    "project_chain",
    "read_gate",
    "register_dataset",
    "train_model",
    "trusted_roots",
]
