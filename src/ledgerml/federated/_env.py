"""Flower and Ray offline and inside the project: set before flwr is first imported."""

from __future__ import annotations

import os
from pathlib import Path


def configure(home: Path | None = None) -> None:
    """Telemetry off; Flower's home folder inside the project (`<home>/.flwr`) when given."""
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if home is not None:
        flwr_home = Path(home) / ".flwr"
        flwr_home.mkdir(parents=True, exist_ok=True)
        os.environ["FLWR_HOME"] = str(flwr_home)


def ray_temp_dir(home: Path) -> str | None:
    """`<home>/.ray` for Ray's session files when its socket paths fit the 107-byte limit
    of Unix sockets (Ray puts `session_<time>_<pid>/sockets/plasma_store` below it);
    None (Ray's default, /tmp/ray) otherwise."""
    path = Path(home).resolve() / ".ray"
    return str(path) if len(str(path)) + 75 <= 107 else None


configure()
