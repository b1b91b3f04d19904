"""Artifact repository `ledgerml+file:///DIR`: MLflow's local files, each also in LedgerML's CAS.

MLflow writes every upload to a hidden temporary file and then renames it into place; this
repository adds the temporary file to the blockstore first and records
`mlflow.artifact_stored` (path, CID, size; for an `MLmodel`, its loadable flavours) once it
is in place. A model version's files are
found by path in those entries, so the version names CIDs `ledgerml store verify` checks.
Used as `mlflow server --artifacts-destination ledgerml+file:///DIR` (proxied artifacts).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

from ledgerml.mlflow_plugin import _context
from ledgerml.mlflow_plugin.records import loadable_flavours
from ledgerml.mlflow_plugin.uri import PREFIX

#: mlflow.server.constants.ARTIFACTS_DESTINATION_ENV_VAR
DESTINATION_ENV = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"
#: MLflow's model description file: its loadable flavours are recorded with it
MLMODEL = "MLmodel"


class LedgerArtifactRepository(LocalArtifactRepository):
    """LocalArtifactRepository that content-addresses and records every file it publishes."""

    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
    ) -> None:
        super().__init__(artifact_uri.removeprefix(PREFIX), tracking_uri, registry_uri)
        # Paths are recorded from the server's --artifacts-destination when under it
        destination = os.environ.get(DESTINATION_ENV, "").removeprefix(PREFIX)
        root = Path(LocalArtifactRepository(destination).artifact_dir) if destination else None
        here = Path(self.artifact_dir)
        self._root = root if root is not None and here.is_relative_to(root) else here

    def _publish_staged_artifact(
        self,
        temp_file_path: str,
        destination_file_path: str,
        finalize_temp_path: Callable[[str], None] | None = None,
    ) -> None:
        added = _context.project().store.add_file(temp_file_path)
        extra: dict[str, Any] = {}
        if os.path.basename(destination_file_path) == MLMODEL:
            # parsed once here, so registering a version reads no file: see loadable_flavours
            with contextlib.suppress(Exception):  # unparseable: registration reads it, and says
                extra["flavours"] = loadable_flavours(Path(temp_file_path).read_bytes())
        super()._publish_staged_artifact(temp_file_path, destination_file_path, finalize_temp_path)
        self._record(destination_file_path, added.cid, added.size, extra)

    def log_artifacts(self, local_dir: Any, artifact_path: Any = None) -> None:
        """One file at a time, so each goes through `_publish_staged_artifact`."""
        for base, _dirs, files in os.walk(local_dir):
            rel = os.path.relpath(base, local_dir)
            sub = artifact_path if rel == "." else os.path.join(artifact_path or "", rel)
            for name in sorted(files):
                self.log_artifact(os.path.join(base, name), sub or None)

    def _record(self, destination: str, cid: str, size: int, extra: dict[str, Any]) -> None:
        path = os.path.relpath(destination, self._root)
        body = {"path": Path(path).as_posix(), "cid": cid, "size": size} | extra
        _context.record("mlflow.artifact_stored", body)
