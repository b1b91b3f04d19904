"""MLflow model registry store `ledgerml+sqlite://…` / `ledgerml+postgresql://…`: records every
change, gates promotion.

- `create_model_version` finds the version's files in the ledger's `mlflow.artifact_stored`
  entries (the artifact repository recorded their CIDs), names the flavour's model file as the
  version's CID, and appends `mlflow.model_version` plus a `model.registered` entry, so the
  rest of LedgerML (`chain register`, `check`, `approve`, `audit trace`) knows the model.
- The gated aliases (`[mlflow] gated_aliases`, default `champion`) and the stage Production
  are set only through the ModelRegistry contract: `GovernanceService.promote` dry-runs the
  promotion (a refusal changes nothing, anywhere), sends it, mirrors `model.promoted`; only
  then does MLflow's database change, and the version gets the transaction hash as the tag
  `ledgerml.gate_tx`. The CID comes from the ledger, never from a tag anyone can set, and
  `ledgerml.*` tags cannot be set or deleted through MLflow.
"""

from __future__ import annotations

import functools
from typing import Any

from mlflow.entities.model_registry import ModelVersionTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, PERMISSION_DENIED
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

from ledgerml.errors import InputError, VerificationError
from ledgerml.mlflow_plugin import _context
from ledgerml.mlflow_plugin.records import item_digests, loadable_flavours, value_digest
from ledgerml.mlflow_plugin.uri import sql_uri

#: The model-version tag that carries the gate's transaction hash (written by the gate only).
GATE_TAG = "ledgerml.gate_tx"
RESERVED_TAG_PREFIX = "ledgerml."


def logged_model(found: _context.Lookups, model_id: str) -> dict[str, Any]:
    """The `mlflow.logged_model` "created" body of `model_id` ({} when the ledger has none)."""
    for _, b in found.find("mlflow.logged_model", model_id):
        if b.get("model_id") == model_id and b.get("action") == "created":
            return dict(b)
    return {}


def source_model_id(source: str, model_id: str | None) -> str | None:
    """The logged model a version comes from: `model_id`, or the one a `models:/m-…` names."""
    if model_id or not source.startswith("models:/m-"):
        return model_id
    return source.removeprefix("models:/").split("/")[0]


def artifact_prefix(
    found: _context.Lookups, source: str, run_id: str | None, model: dict[str, Any] | None
) -> str | None:
    """The version's folder relative to the artifacts destination, from what the ledger holds
    (`model`: the `logged_model` body of the version's logged model, None when it has none)."""
    location = None
    if model is not None:
        location = model.get("artifact_location")
    elif source.startswith("mlflow-artifacts:"):
        location = source
    elif source.startswith("runs:/") and run_id:
        rest = source.removeprefix("runs:/").split("/", 1)
        for _, b in found.find("mlflow.run_created", run_id):
            if b.get("run_id") == run_id:
                exp = b["experiment_id"]
                location = f"mlflow-artifacts:/{exp}/{run_id}/artifacts/" + (
                    rest[1] if len(rest) > 1 else ""
                )
    if not location or not location.startswith("mlflow-artifacts:"):
        return None
    return location.removeprefix("mlflow-artifacts:").lstrip("/").rstrip("/")


def version_files(
    found: _context.Lookups, prefix: str
) -> tuple[dict[str, str], list[list[str]] | None]:
    """(relative path -> CID of every file recorded under `prefix`, the newest record wins;
    the flavours recorded with the folder's `MLmodel`, None when its entry has none)."""
    files: dict[str, str] = {}
    flavours = None
    for _, b in found.find_prefix("mlflow.artifact_stored", prefix + "/"):
        path = str(b["path"])
        if path.startswith(prefix + "/"):
            rel = path[len(prefix) + 1 :]
            files[rel] = b["cid"]
            if rel == "MLmodel":
                recorded = b.get("flavours")
                flavours = recorded if isinstance(recorded, list) else None
    return files, flavours


def model_registered(found: _context.Lookups, cid: str) -> int | None:
    """The index of the first `model.registered` entry of `cid` (as
    `mlops.governance.find_model_registered`, through the index)."""
    for idx, b in found.find("model.registered", cid):
        if b.get("cid") == cid:
            return idx
    return None


@functools.lru_cache(maxsize=1024)
def _flavour_files(mlmodel: str) -> tuple[tuple[str, str], ...]:
    """`loadable_flavours` of the MLmodel with CID `mlmodel`, read (verified) from the CAS: for
    files stored before the repository recorded flavours. Cached by CID (a CID names its
    bytes); a failed read raises and is not cached."""
    spec = _context.project().store.read_bytes(mlmodel)
    return tuple((f, name) for f, name in loadable_flavours(spec))


def model_file(
    files: dict[str, str], flavours: list[list[str]] | None = None
) -> tuple[str | None, str | None]:
    """(flavour, CID of its model file): from the flavours recorded with the version's MLmodel,
    else from the MLmodel read from the CAS."""
    mlmodel = files.get("MLmodel")
    if mlmodel is None:
        return None, None
    pairs = _flavour_files(mlmodel) if flavours is None else flavours
    for pair in pairs:
        if len(pair) == 2 and isinstance(pair[1], str) and pair[1] in files:
            return str(pair[0]), files[pair[1]]
    return None, None


def recorded_version(name: str, version: str | int) -> dict[str, Any] | None:
    """The `mlflow.model_version` body of NAME/VERSION: the ledger says which CID it is."""
    newest = None
    with _context.lookups() as found:
        for _, b in found.find("mlflow.model_version", name):
            if b.get("name") == name and str(b.get("version")) == str(version):
                newest = b
    return newest


class LedgerRegistryStore(SqlAlchemyStore):
    """Model registry store: every change on the ledger; gated aliases through the contract."""

    def __init__(self, store_uri: str, tracking_uri: str | None = None) -> None:
        db_uri = sql_uri(store_uri)
        _context.index_ready()  # the project, and its index checked against the ledger
        super().__init__(db_uri)

    # ------------------------------------------------------------- registered models

    def create_registered_model(
        self, name: Any, tags: Any = None, description: Any = None, deployment_job_id: Any = None
    ) -> Any:
        _refuse_reserved_tags(tags)
        model = super().create_registered_model(name, tags, description, deployment_job_id)
        _context.record(
            "mlflow.registered_model",
            {"action": "created", "name": name, "tags": item_digests(tags)},
        )
        return model

    def rename_registered_model(self, name: Any, new_name: Any) -> Any:
        model = super().rename_registered_model(name, new_name)
        _context.record(
            "mlflow.registered_model", {"action": "renamed", "name": name, "new": new_name}
        )
        return model

    def delete_registered_model(self, name: Any) -> None:
        super().delete_registered_model(name)
        _context.record("mlflow.registered_model", {"action": "deleted", "name": name})

    def set_registered_model_tag(self, name: Any, tag: Any) -> None:
        super().set_registered_model_tag(name, tag)
        body = {"action": "tagged", "name": name, "tags": item_digests([tag])}
        _context.record("mlflow.registered_model", body)

    def delete_registered_model_tag(self, name: Any, key: Any) -> None:
        super().delete_registered_model_tag(name, key)
        _context.record(
            "mlflow.registered_model", {"action": "tagged", "name": name, "tags": {key: None}}
        )

    # ---------------------------------------------------------------- model versions

    def create_model_version(
        self,
        name: Any,
        source: Any,
        run_id: Any = None,
        tags: Any = None,
        run_link: Any = None,
        description: Any = None,
        local_model_path: Any = None,
        model_id: Any = None,
    ) -> Any:
        _refuse_reserved_tags(tags)
        mid = source_model_id(source, model_id)
        with _context.lookups() as found:  # index seeks, not ledger scans
            model = logged_model(found, mid) if mid else None  # for prefix and lineage
            prefix = artifact_prefix(found, source, run_id, model)
            files, flavours = version_files(found, prefix) if prefix else ({}, None)
        framework, cid = model_file(files, flavours)  # the CAS only for older entries
        registered = None
        if cid is not None:
            with _context.lookups(top_up=False) as found:  # as of a moment ago
                registered = model_registered(found, cid)
        # the run behind a logged model, for lineage (MLflow itself is passed what it got)
        lineage_run = run_id or (model.get("source_run_id") if model_id and model else None)
        mv = super().create_model_version(
            name, source, run_id, tags, run_link, description, local_model_path, model_id
        )
        body: dict[str, Any] = {
            "name": name,
            "version": str(mv.version),
            "source": source,
            "run_id": lineage_run,
            "model_id": model_id,
            "cid": cid,
            "framework": framework,
            "files": files,
            "tags": item_digests(tags),
        }
        items: list[tuple[str, dict[str, Any]]] = [("mlflow.model_version", body | _context.who())]
        if cid is not None and framework is not None and registered is None:
            entry = {"name": name, "cid": cid, "framework": framework}
            if lineage_run:
                entry["run_id"] = lineage_run
            items.append(("model.registered", entry))
        _context.project().ledger.append_many(items)  # one batch: both entries or neither
        return mv

    def delete_model_version(self, name: Any, version: Any) -> None:
        super().delete_model_version(name, version)
        body = {"name": name, "version": str(version), "deleted": True}
        _context.record("mlflow.model_version", body)

    def set_model_version_tag(self, name: Any, version: Any, tag: Any) -> None:
        _refuse_reserved_tags([tag])
        super().set_model_version_tag(name, version, tag)
        self._version_tag(name, version, tag.key, tag.value)

    def delete_model_version_tag(self, name: Any, version: Any, key: Any) -> None:
        _refuse_reserved_tags([ModelVersionTag(key, "")])
        super().delete_model_version_tag(name, version, key)
        self._version_tag(name, version, key, None)

    def _version_tag(self, name: str, version: Any, key: str, value: str | None) -> None:
        body = {"name": name, "version": str(version), "tags": {key: value_digest(value)}}
        _context.record("mlflow.model_version_tag", body)

    # ------------------------------------------------------------ aliases and stages

    def set_registered_model_alias(self, name: Any, alias: Any, version: Any) -> None:
        gated = alias in _context.project().gated_aliases
        tx = self._gate(name, version, alias, what=f"alias {alias!r}") if gated else None
        super().set_registered_model_alias(name, alias, version)
        if tx is not None:
            super().set_model_version_tag(name, version, ModelVersionTag(GATE_TAG, tx["tx_hash"]))
        _context.record(
            "mlflow.alias",
            {"action": "set", "name": name, "alias": alias, "version": str(version)}
            | ({"gated": True, **tx} if tx else {}),
        )

    def delete_registered_model_alias(self, name: Any, alias: Any) -> None:
        super().delete_registered_model_alias(name, alias)
        _context.record("mlflow.alias", {"action": "deleted", "name": name, "alias": alias})

    def transition_model_version_stage(
        self, name: Any, version: Any, stage: Any, archive_existing_versions: Any
    ) -> Any:
        from mlflow.entities.model_registry.model_version_stages import get_canonical_stage

        canonical = get_canonical_stage(stage)
        tx = None
        if canonical == "Production":
            tx = self._gate(name, version, _context.PRODUCTION_ALIAS, what="stage Production")
        mv = super().transition_model_version_stage(name, version, stage, archive_existing_versions)
        if tx is not None:
            super().set_model_version_tag(name, version, ModelVersionTag(GATE_TAG, tx["tx_hash"]))
        _context.record(
            "mlflow.stage",
            {"name": name, "version": str(version), "stage": canonical}
            | {"archive_existing": bool(archive_existing_versions)}
            | ({"gated": True, **tx} if tx else {}),
        )
        return mv

    def _gate(self, name: str, version: Any, alias: str, *, what: str) -> dict[str, Any]:
        """Promote the version's CID to `alias` on the ModelRegistry contract, or refuse.

        Raises MlflowException naming the unmet rule or missing approval; a refusal sends no
        transaction and appends nothing (the contract call is dry-run first).
        """
        from ledgerml.chain import ContractRevert
        from ledgerml.mlops.governance import GovernanceService

        self.get_model_version(name, version)  # RESOURCE_DOES_NOT_EXIST before anything
        recorded = recorded_version(name, version)
        cid = recorded.get("cid") if recorded else None
        label = f"model {name!r} version {version}"
        if not cid:
            raise MlflowException(
                f"{what} refused for {label}: the ledger records no model file CID for it "
                "(register it through a LedgerML store with its artifacts on "
                "ledgerml+file)",
                PERMISSION_DENIED,
            )
        try:
            with GovernanceService.open(_context.project().paths) as gov:
                done = gov.promote(cid, alias)
        except ContractRevert as exc:
            raise MlflowException(
                f"{what} refused by the LedgerML gate for {label} ({cid}): {exc}", PERMISSION_DENIED
            ) from None
        except InputError as exc:
            hint = (
                "; enrol it with `ledgerml chain register CID --policy P`"
                if exc.field == "model"
                else ""
            )
            raise MlflowException(
                f"{what} refused by the LedgerML gate for {label} ({cid}): {exc}{hint}",
                PERMISSION_DENIED,
            ) from None
        except VerificationError as exc:
            raise MlflowException(f"{what} for {label}: {exc}", PERMISSION_DENIED) from None
        return {"cid": cid, "tx_hash": done.tx_hash, "contract_alias": alias}


def _refuse_reserved_tags(tags: Any) -> None:
    for t in tags or ():
        if str(t.key).startswith(RESERVED_TAG_PREFIX):
            raise MlflowException(
                f"tag {t.key!r}: keys starting with {RESERVED_TAG_PREFIX!r} are written by the "
                "LedgerML gate only",
                INVALID_PARAMETER_VALUE,
            )


__all__ = ["GATE_TAG", "LedgerRegistryStore"]
