"""Exceptions shared by every layer, so the CLI and the service can map them to
exit codes (2 for bad input, 1 for a failed verification or policy) and HTTP
statuses without knowing which layer raised them.

They live in the bottom layer (crypto imports nothing else of ours) so that
every layer, crypto included, can raise them without pointing upwards; the
rest of the code imports them from `ledgerml.errors`, which re-exports them.
"""

from __future__ import annotations


class LedgerMLError(Exception):
    """Base class of every error LedgerML raises on purpose."""


class InputError(LedgerMLError, ValueError):
    """Bad input from a user: names the field and the reason. CLI exit code 2, HTTP 4xx.

    Raised *before* anything is written, so nothing is half-written.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class VerificationError(LedgerMLError):
    """Something does not verify (hash, signature, proof, policy). CLI exit code 1.

    Verification fails closed: when a check cannot complete, this is raised too.
    """


class IntegrityError(VerificationError):
    """Stored data no longer matches its hash (corrupt or tampered block or entry)."""


class ProjectError(InputError):
    """The project folder is missing or not initialised."""
