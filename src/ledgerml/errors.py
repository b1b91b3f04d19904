"""The exceptions every layer raises; defined in `ledgerml.crypto.errors`, the
bottom layer, and re-exported here under their usual import path."""

from ledgerml.crypto.errors import (
    InputError,
    IntegrityError,
    LedgerMLError,
    ProjectError,
    VerificationError,
)

__all__ = ["InputError", "IntegrityError", "LedgerMLError", "ProjectError", "VerificationError"]
