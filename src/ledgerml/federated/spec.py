"""The settings of one federated run, shared by the runner, the ServerApp and the ClientApps.

Written by the runner to `<workdir>/spec.json` before anything starts, so the same
Flower apps run in simulation (in-process) and in deployment (separate processes that
only receive the work folder's path in their run or node configuration).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ledgerml.federated._linear import LinearParams
from ledgerml.federated._xgb import XgbParams

Strategy = Literal["xgboost", "linear"]
PoisonMode = Literal["flip", "scale"]
SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class RunSpec:
    """Everything the server and the banks need to agree on for one run."""

    run_id: str
    home: str
    workdir: str
    banks: tuple[str, ...]
    rounds: int
    strategy: Strategy = "xgboost"
    num_feature: int = 0
    xgb: XgbParams = field(default_factory=XgbParams)
    linear: LinearParams = field(default_factory=LinearParams)
    #: simulated misbehaviour (for demonstrations and tests): which bank, and how
    poison_bank: str | None = None
    poison_mode: PoisonMode = "flip"
    poison_scale: float = 10.0
    forge_bank: str | None = None
    #: seconds the server waits for the banks' nodes and replies
    timeout: float = 600.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["banks"] = list(self.banks)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        data = dict(data)
        data["banks"] = tuple(data["banks"])
        data["xgb"] = XgbParams(**data["xgb"])
        data["linear"] = LinearParams(**data["linear"])
        return cls(**data)

    def save(self) -> Path:
        path = Path(self.workdir) / SPEC_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, workdir: str | Path) -> RunSpec:
        return cls.from_json(json.loads((Path(workdir) / SPEC_FILE).read_text()))

    def bank_dir(self, bank: str) -> Path:
        return Path(self.workdir) / "banks" / bank
