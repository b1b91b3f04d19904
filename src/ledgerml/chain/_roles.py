"""The role names LedgerML uses, each one account (derived from the seed) and one
OpenZeppelin AccessControl role id (keccak256("<NAME>_ROLE"); admin is the zero role)."""

from __future__ import annotations

from eth_utils import keccak

from ledgerml.errors import InputError

ROLES: tuple[str, ...] = (
    "admin",
    "policy_admin",
    "model_owner",
    "validator",
    "risk_approver",
    "compliance_approver",
    "monitor",
    "log_operator",
)


def role_id(role: str) -> bytes:
    """The AccessControl role id of a role name."""
    if role == "admin":
        return b"\x00" * 32
    if role not in ROLES:
        raise InputError(f"unknown role {role!r} (known: {', '.join(ROLES)})", field="role")
    return keccak(text=f"{role.upper()}_ROLE")


#: role id -> role name, to print roles found in reverts and events
ROLE_NAMES: dict[bytes, str] = {role_id(r): r for r in ROLES}
