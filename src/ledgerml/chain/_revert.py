"""One revert decoder for every backend.

eth-tester raises its own `TransactionFailed` with the revert data only in the message,
anvil/geth/Besu answer with JSON-RPC error data (web3 raises `ContractCustomError`), and a
mined status-0 receipt carries no data at all (it is replayed with `eth_call`). All three end
here: 4-byte selector -> ABI error (ours and OpenZeppelin's inherited ones) -> `eth_abi.decode`
-> `ContractRevert` with a sentence a compliance officer can read.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from ledgerml.chain._roles import ROLE_NAMES
from ledgerml.errors import VerificationError

SCALE = 1_000_000
_PANIC_CODES = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x31: "pop from empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
}


class ContractRevert(VerificationError):
    """A contract refused a call: `name` is the Solidity error, `args` its decoded arguments."""

    def __init__(self, name: str, args: Mapping[str, Any], message: str) -> None:
        self.name = name
        #: decoded error arguments by name (bytes32 kept as bytes); `.args` stays Exception's
        self.error_args: dict[str, Any] = dict(args)
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ContractRevert, (self.name, self.error_args, self.message))


def bytes32_text(value: bytes) -> str:
    """Readable form of a bytes32 id: role name, short ASCII text, else hex."""
    if value in ROLE_NAMES:
        return ROLE_NAMES[value]
    stripped = value.rstrip(b"\x00")
    if stripped and all(0x20 < b < 0x7F for b in stripped):
        return stripped.decode("ascii")
    return "0x" + value.hex()


def _fixed(value: int) -> str:
    """1e6 fixed point as a decimal (850000 -> 0.85)."""
    whole, frac = divmod(value, SCALE)
    return f"{whole}.{frac:06d}".rstrip("0").rstrip(".") if frac else str(whole)


def _describe(name: str, a: Mapping[str, Any]) -> str:
    b = {k: bytes32_text(v) if isinstance(v, bytes) and len(v) == 32 else v for k, v in a.items()}
    templates: dict[str, str] = {
        "UnknownModel": "no model with this id is registered on chain",
        "UnknownPolicy": "no policy {policyId} on chain",
        "PolicyExists": "policy {policyId} already exists (policies are immutable; use a new id)",
        "ModelExists": "model {modelId} is already registered",
        "InvalidPolicy": "invalid policy: {reason}",
        "InvalidComparator": "invalid comparator {comparator} (0 means >=, 1 means <=)",
        "InvalidModel": "invalid input: {reason}",
        "MissingMetric": "metric {metric} required by the policy was not submitted",
        "DuplicateMetric": "metric {metric} given twice",
        "MetricsAlreadySubmitted": "metrics were already submitted for this model",
        "MetricsNotSubmitted": "no validation metrics have been submitted for this model",
        "MissingApproval": "approval by role {role} is missing",
        "RoleNotRequired": "role {role} is not an approver role of this model's policy",
        "SelfApproval": (
            "segregation of duties: the model's registrant cannot validate or approve it"
        ),
        "AlreadyApproved": "role {role} has already approved this model",
        "RetrainRequiredError": "model is marked for retraining (drift) and can never be promoted",
        "ModelRetired": (
            "model was retired (it drifted, and a retrained model took its alias) and can "
            "never be promoted"
        ),
        "TreeSizeNotGrowing": (
            "tree size must grow: {given} is not greater than the anchored {previous}"
        ),
        "InvalidAnchor": "invalid anchor: {reason}",
        "AccessControlUnauthorizedAccount": "account {account} lacks role {neededRole}",
        "AccessControlBadConfirmation": "renounceRole must be called by the account itself",
        "Error": "{message}",
    }
    if name == "RuleFailed":
        return (
            f"rule failed: metric {b['metric']} = {_fixed(a['value'])} "
            f"does not meet threshold {_fixed(a['threshold'])}"
        )
    if name == "Panic":
        code = int(a.get("code", 0))
        return f"contract panic 0x{code:02x}: {_PANIC_CODES.get(code, 'unknown panic')}"
    if name in templates:
        try:
            return templates[name].format(**b)
        except KeyError:
            pass
    inner = ", ".join(f"{k}={v}" for k, v in b.items())
    return f"{name}({inner})"


@dataclass(frozen=True)
class _ErrorSpec:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]


def abi_type(inp: Mapping[str, Any]) -> str:
    """Canonical ABI type string of an ABI input (tuples spelled out, for selectors)."""
    t = str(inp["type"])
    if t.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in inp["components"])
        return f"({inner}){t[5:]}"
    return t


class RevertDecoder:
    """Selector -> error table built from contract ABIs (plus `Error(string)`, `Panic(uint256)`)."""

    def __init__(self, abis: Iterable[Iterable[Mapping[str, Any]]]) -> None:
        self._specs: dict[bytes, _ErrorSpec] = {
            bytes.fromhex("08c379a0"): _ErrorSpec("Error", ("string",), ("message",)),
            bytes.fromhex("4e487b71"): _ErrorSpec("Panic", ("uint256",), ("code",)),
        }
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = tuple(abi_type(i) for i in item["inputs"])
                sig = f"{item['name']}({','.join(types)})"
                self._specs[keccak(text=sig)[:4]] = _ErrorSpec(
                    item["name"], types, tuple(i["name"] for i in item["inputs"])
                )

    def decode(self, data: bytes | None, *, context: str = "") -> ContractRevert:
        """Turn raw revert data into a ContractRevert (unknown or empty data included)."""
        prefix = f"{context}: " if context else ""
        if not data:
            return ContractRevert(
                "Reverted", {}, prefix + "transaction reverted without reason (out of gas?)"
            )
        spec = self._specs.get(bytes(data[:4]))
        if spec is None:
            return ContractRevert(
                "UnknownError",
                {"data": "0x" + bytes(data).hex()},
                prefix + f"reverted with unknown error 0x{bytes(data[:4]).hex()}",
            )
        try:
            values = abi_decode(list(spec.types), bytes(data[4:]))
        except Exception:  # malformed payload still fails closed, with the raw data
            return ContractRevert(
                spec.name,
                {"data": "0x" + bytes(data).hex()},
                prefix + f"{spec.name} (undecodable arguments)",
            )
        args = {
            n: to_checksum_address(v) if t == "address" else v
            for n, t, v in zip(spec.names, spec.types, values, strict=True)
        }
        return ContractRevert(spec.name, args, prefix + _describe(spec.name, args))


_HEX_RE = re.compile(r"0x[0-9a-fA-F]{8,}")


def revert_data_from_exception(exc: BaseException) -> bytes | None:
    """Extract raw revert bytes from whatever web3/eth-tester raised, or None if there are none.

    web3 errors carry `.data` as hex (or a dict with "data"); eth-tester's `TransactionFailed`
    only has a message like ``execution reverted: b'\\x12...'``.
    """
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    for arg in exc.args:
        if isinstance(arg, bytes | bytearray):
            return bytes(arg)
        if isinstance(arg, dict):
            inner = arg.get("data")
            if isinstance(inner, str) and inner.startswith("0x"):
                return bytes.fromhex(inner[2:])
        if not isinstance(arg, str):
            continue
        text = arg.split("execution reverted:", 1)[-1].strip()
        if text.startswith(("b'", 'b"')):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = None
            if isinstance(value, bytes):
                return value
        if _HEX_RE.fullmatch(text) and len(text) % 2 == 0:
            return bytes.fromhex(text[2:])
    return None


def is_out_of_gas(exc: BaseException) -> bool:
    """Whether a failed call ran out of gas (eth-tester: "Out of gas: …", anvil: "OutOfGas")."""
    text = str(exc).lower().replace(" ", "")
    return "outofgas" in text
