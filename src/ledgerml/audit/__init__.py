"""Audit: lineage traces with proofs, offline-verifiable bundles, the HTML report,
retention status and the auditor's web pages (docs/audit.md).

    from ledgerml.audit import AuditView, trace_decision
    with AuditView.open(paths) as view:
        print(trace_decision(view, "dec-42").ok)
"""

from ledgerml.audit.trace import Trace, TraceStep, trace_decision, trace_model
from ledgerml.audit.view import AuditView, ProvenEntry, SignedCheckpoint

__all__ = [
    "AuditView",
    "ProvenEntry",
    "SignedCheckpoint",
    "Trace",
    "TraceStep",
    "trace_decision",
    "trace_model",
]
