"""LedgerML: provable machine learning for finance.

Every data set, training run, model, compliance check, approval, deployment and
decision becomes an entry in a tamper-evident RFC 9162 Merkle log whose signed
checkpoints anyone can verify offline.
"""

__version__ = "0.1.0"

#: The front door (`ledgerml.api`), resolved on first use: `import ledgerml` stays a leaf
#: that loads nothing else, and `ledgerml.open()` / `ledgerml.init()` still work.
_API = ("open", "init", "Project", "RegisteredModel", "Run")


def __getattr__(name: str) -> object:
    if name in _API:
        from ledgerml import api

        return getattr(api, name)
    raise AttributeError(f"module 'ledgerml' has no attribute {name!r}")
