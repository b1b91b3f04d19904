"""The builders MLflow's entry points name (pyproject.toml), kept free of mlflow imports.

MLflow loads entry points while `mlflow.tracking` is still initialising; a module that imports
MLflow's stores at import time fails there (a circular import) and the scheme silently goes
unregistered. These functions import the stores on first call instead.
"""

from __future__ import annotations

from typing import Any


def tracking_store(store_uri: str, artifact_uri: str | None = None) -> Any:
    """`mlflow.tracking_store` builder for `ledgerml+sqlite://…`, `ledgerml+postgresql://…`."""
    from ledgerml.mlflow_plugin.tracking import LedgerTrackingStore

    return LedgerTrackingStore(store_uri, artifact_uri)


def registry_store(store_uri: str, tracking_uri: str | None = None) -> Any:
    """`mlflow.model_registry_store` builder for `ledgerml+sqlite://…`, `ledgerml+postgresql://…`."""
    from ledgerml.mlflow_plugin.registry import LedgerRegistryStore

    return LedgerRegistryStore(store_uri, tracking_uri)


def artifact_repository(
    artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
) -> Any:
    """`mlflow.artifact_repository` builder for `ledgerml+file:///DIR`."""
    from ledgerml.mlflow_plugin.artifacts import LedgerArtifactRepository

    return LedgerArtifactRepository(artifact_uri, tracking_uri, registry_uri)
