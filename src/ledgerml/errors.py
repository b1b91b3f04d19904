"""The exceptions every layer raises; defined in `ledgerml.crypto.errors`, the
bottom layer, and re-exported here under their usual import path."""

from ledgerml.crypto.errors import (
    InputError,
    IntegrityError,
    LedgerMLError,
    ProjectError,
    VerificationError,
)


class DataWarning(UserWarning):
    """Something about the data a user should see but that does not stop the command (a
    feature that leaks the label, an identifier among the features): `warning:` on the CLI."""


__all__ = [
    "DataWarning",
    "InputError",
    "IntegrityError",
    "LedgerMLError",
    "ProjectError",
    "VerificationError",
]
