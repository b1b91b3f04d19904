"""Committed compiler output (ABI and bytecode), so running LedgerML never needs node or solc.

`tools/solc/compile.js` writes `artifacts/<Contract>.json`; a test recompiles and compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ledgerml.errors import InputError

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
CONTRACT_NAMES: tuple[str, ...] = ("ModelRegistry", "AuditAnchor")


@dataclass(frozen=True)
class Artifact:
    """One compiled contract as committed in the repository."""

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler_version: str
    evm_version: str


@cache
def load_artifact(name: str) -> Artifact:
    """Read `artifacts/<name>.json`; an unknown name is an input error naming the contract."""
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(
            f"no compiled artifact {path.name} (known: {', '.join(CONTRACT_NAMES)})",
            field="contract",
        ) from exc
    return Artifact(
        name=raw["contractName"],
        abi=tuple(raw["abi"]),
        bytecode=bytes.fromhex(raw["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(raw["deployedBytecode"].removeprefix("0x")),
        compiler_version=raw["compiler"]["version"],
        evm_version=raw["compiler"]["evmVersion"],
    )


def all_artifacts() -> tuple[Artifact, ...]:
    """Every contract LedgerML deploys, in deployment order."""
    return tuple(load_artifact(n) for n in CONTRACT_NAMES)
