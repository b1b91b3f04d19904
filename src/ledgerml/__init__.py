"""LedgerML: provable machine learning for finance.

Every data set, training run, model, compliance check, approval, deployment and
decision becomes an entry in a tamper-evident RFC 9162 Merkle log whose signed
checkpoints anyone can verify offline.
"""

__version__ = "0.1.0"
