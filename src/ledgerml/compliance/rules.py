"""A parsed policy pack and its rules: what `compliance.packs` reads from TOML.

Apart from the parser so that the evidence and the named checks (`compliance.evidence`,
`compliance.checks`) can take a rule without importing the parser, which in turn checks
a rule's `check` name against the checks' registry.

    rule.passes(value)        # value >= / <= threshold, by the rule's comparator
    pack.policy_id            # "<id>-v<version>", the on-chain policy
    pack.on_chain_rules       # the rules the contract evaluates
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class PackRule:
    """One rule of a pack: where its value comes from and the threshold it must meet."""

    id: str
    regulation: str
    kind: Literal["metric", "check"]
    description: str
    metric: str
    comparator: Literal[">=", "<="]
    threshold: float
    on_chain: bool
    check: str | None = None
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def passes(self, value: float) -> bool:
        return value >= self.threshold if self.comparator == ">=" else value <= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "regulation": self.regulation,
            "kind": self.kind,
            "description": self.description,
            "metric": self.metric,
            "comparator": self.comparator,
            "threshold": self.threshold,
            "on_chain": self.on_chain,
            "check": self.check,
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class Pack:
    """A parsed pack, with the SHA-256 of its TOML bytes for provenance."""

    id: str
    version: int
    description: str
    approver_roles: tuple[str, ...]
    max_drift_psi: float
    rules: tuple[PackRule, ...]
    sha256: str

    @property
    def policy_id(self) -> str:
        """The on-chain policy id (bytes32 text); policies are immutable, hence the version."""
        return f"{self.id}-v{self.version}"

    @property
    def on_chain_rules(self) -> tuple[PackRule, ...]:
        return tuple(r for r in self.rules if r.on_chain)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "policy_id": self.policy_id,
            "description": self.description,
            "approver_roles": list(self.approver_roles),
            "max_drift_psi": self.max_drift_psi,
            "sha256": self.sha256,
            "rules": [r.to_json() for r in self.rules],
        }
