"""MLOps on top of the ledger and the chain: code that needs both lives here (never below).

from ledgerml.mlops import GovernanceService, anchor, trusted_roots

with GovernanceService.open(paths) as gov:      # project's chain + deployment + ledger
    gov.promote(cid, "production")              # tx on chain, `model.promoted` in the log
anchor(paths)                                   # latest checkpoint -> AuditAnchor
ledger.verify(verifiers, trusted=trusted_roots(paths))
"""

from ledgerml.mlops._chain import chain_settings, has_deployment, project_chain
from ledgerml.mlops.anchoring import AnchorResult, anchor, anchored, trusted_roots
from ledgerml.mlops.governance import GovernanceService, Mirrored, find_model_registered

__all__ = [
    "AnchorResult",
    "GovernanceService",
    "Mirrored",
    "anchor",
    "anchored",
    "chain_settings",
    "find_model_registered",
    "has_deployment",
    "project_chain",
    "trusted_roots",
]
