"""Typed bodies of ledger entries, validated on append.

Event types are an API: extend them, never rename. A type is `<group>.<verb>`;
custom types start with `x.` and take any JSON object. Bodies carry hashes,
salted commitments and content identifiers — never personal data.

Unknown fields are refused on append (a typo must not silently vanish from the
audit trail); verification only requires that an entry's type is known, so
older readers accept entries written by newer versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledgerml.crypto.canonical import check_json_value
from ledgerml.errors import InputError
from ledgerml.ledger._scan import KNOWN_TYPES, is_known_type

Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lowercase hex")]
Cid = Annotated[
    str, Field(pattern=r"^b[a-z2-7]{58,}$", description="CIDv1, base32 (bafkrei…/bafybei…)")
]
TxHash = Annotated[str, Field(pattern=r"^0x[0-9a-f]{64}$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
SafeInt = Annotated[int, Field(ge=0, le=2**53 - 1)]
JsonObject = dict[str, Any]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    #: True when some field takes free-form JSON, which must be walked for NaN etc.
    free_form: ClassVar[bool] = False


class DatasetRegistered(Body):
    name: Name
    cid: Cid
    rows: SafeInt
    columns: list[str]
    dtypes: dict[str, str] = {}
    schema_hash: Hex32
    source_sha256: Hex32 | None = None
    label: str | None = None
    pii_columns: list[str] = []
    subject_column: str | None = None
    source: str | None = None
    #: What wrote the stored bytes, e.g. "parquet/v1 pyarrow 26.0.1": re-deriving the
    #: CID from the source file needs the same writer (its version is in the footer).
    writer: str | None = None


class RunStarted(Body):
    free_form: ClassVar[bool] = True
    run_id: Name
    dataset_cids: list[Cid]
    model_type: Name
    params: JsonObject = {}
    seed: SafeInt | None = None
    code_version: str | None = None
    library_versions: dict[str, str] = {}


class RunFinished(Body):
    run_id: Name
    status: Literal["succeeded", "failed"]
    model_cid: Cid | None = None
    duration_s: float | None = Field(default=None, ge=0)
    error: str | None = None


class FeatureSpec(Body):
    name: Name
    dtype: Name


class ModelRegistered(Body):
    name: Name
    cid: Cid
    run_id: Name | None = None
    framework: Name
    dataset_cids: list[Cid] = []
    features: list[FeatureSpec] = []
    target: str | None = None
    card_cid: Cid | None = None


class EvaluationRecorded(Body):
    model_cid: Cid
    dataset_cid: Cid | None = None
    split: str | None = None
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]] = {}
    plots: dict[str, Cid] = {}


class BacktestRecorded(Body):
    """A rolling-origin backtest (ledgerml.mlops.backtest): every fold's numbers and models."""

    free_form: ClassVar[bool] = True
    dataset_cid: Cid
    model_cid: Cid | None = None
    model_type: Name
    target: Name
    time_column: str | None = None
    drop: list[str] = []
    params: JsonObject = {}
    seed: SafeInt
    recipe: Hex32
    fold_fraction: float
    folds: list[JsonObject]
    summary: dict[str, float | int | None]
    plot: Cid


class RuleResult(Body):
    rule_id: Name
    regulation: str
    metric: str | None = None
    value: float | str | bool | None = None
    threshold: float | str | bool | None = None
    passed: bool
    detail: str | None = None
    #: True when the ModelRegistry contract evaluated this rule (its verdict is the one shown)
    on_chain: bool | None = None


class ComplianceChecked(Body):
    model_cid: Cid
    policy: Name
    results: list[RuleResult]
    passed: bool
    tx_hash: TxHash | None = None
    #: the policy pack applied (ledgerml.compliance) and the SHA-256 of its TOML bytes
    pack: Name | None = None
    pack_sha256: Hex32 | None = None
    #: the data set a data-dependent rule (fairness) was computed on
    data_cid: Cid | None = None
    #: why the numeric results were not (or only partly) submitted on chain, if so
    note: str | None = None


class ApprovalGranted(Body):
    model_cid: Cid
    role: Name
    approver: Name
    key_id: str | None = None
    comment: str | None = None
    tx_hash: TxHash | None = None


class ModelPromoted(Body):
    model_cid: Cid
    alias: Name
    previous_cid: Cid | None = None
    tx_hash: TxHash | None = None


class ModelDocumented(Body):
    """A model card stored in the CAS (JSON and Markdown) for a registered model."""

    model_cid: Cid
    card_cid: Cid
    markdown_cid: Cid
    intended_use: Annotated[str, Field(min_length=1, max_length=2000)]


class DecisionRecorded(Body):
    decision_id: Name
    model_cid: Cid
    input_commitment: Hex32
    score: float
    threshold: float
    outcome: Name
    reasons: list[str] = []


class DriftDetected(Body):
    model_cid: Cid
    window_cid: Cid | None = None
    psi: dict[str, float]
    max_psi: float
    threshold: float
    tx_hash: TxHash | None = None


class RetrainRequested(Body):
    model_cid: Cid
    reason: str
    tx_hash: TxHash | None = None


class BankUpdate(Body):
    bank: Name
    update_hash: Hex32
    samples: SafeInt
    trust: float
    weight: float
    signature_ok: bool = True
    #: the update's bytes in the CAS, so the round can be re-derived (ledgerml.federated)
    update_cid: Cid | None = None
    #: this round's agreement score of the update (the input to `trust`)
    score: float | None = None


class FlRound(Body):
    round: SafeInt
    updates: list[BankUpdate]
    aggregate_cid: Cid | None = None
    metrics: dict[str, float] = {}
    tx_hash: TxHash | None = None
    #: which federated run the round belongs to, its strategy, and the model it built on
    run_id: Name | None = None
    strategy: Name | None = None
    previous_cid: Cid | None = None


class FlBankEnrolled(Body):
    """A bank's update-signing key, enrolled in the consortium: the server accepts
    updates from `bank` only with a signature by this key."""

    bank: Name
    algorithm: Literal["ed25519"]
    public_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="raw key, hex")]
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


class FlUpdateRejected(Body):
    """An update the server refused (bad signature, unknown bank, unreadable model)."""

    run_id: Name
    round: SafeInt
    bank: Name
    update_hash: Hex32 | None = None
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class SubjectErased(Body):
    subject_commitment: Hex32
    reason: str | None = None


class CheckpointAnchored(Body):
    tree_size: SafeInt
    root: Hex32
    note_sha256: Hex32
    chain_id: SafeInt
    contract: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]
    tx_hash: TxHash
    block_number: SafeInt | None = None


Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="EVM address")]
#: A C2SP signed-note verifier key string `name+hex(key ID)+base64(type ‖ public key)`.
VerifierKey = Annotated[
    str, Field(min_length=10, max_length=4096, pattern=r"^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+$")
]


class KeyRotated(Body):
    """The log's signing key changed (`ledgerml keys rotate`). The entry's `sigs` carry the
    old keys' signatures over `crypto.keys.rotation_message`: checkpoints of a tree that
    does not contain this entry verify with `old_verifiers`, later ones with `new_verifiers`."""

    old_verifiers: Annotated[list[VerifierKey], Field(min_length=1, max_length=4)]
    new_verifiers: Annotated[list[VerifierKey], Field(min_length=1, max_length=4)]
    reason: Annotated[str, Field(max_length=500)] | None = None


class PolicyRule(Body):
    metric: Name
    comparator: Literal[">=", "<="]
    threshold: float


class PolicyRegistered(Body):
    """A compliance policy created on chain (ModelRegistry.setPolicy), mirrored here."""

    policy_id: Name
    rules: list[PolicyRule]
    approver_roles: list[Name]
    max_drift_psi: float
    tx_hash: TxHash
    chain_id: SafeInt
    contract: Address
    block_number: SafeInt | None = None


class ModelEnrolled(Body):
    """A model registered on chain under a policy. `ledger_index` is the index of the
    model's `model.registered` entry, which the contract stores; `tx_hash` points back."""

    model_cid: Cid
    policy: Name
    dataset_digest: Hex32
    dataset_cid: Cid | None = None
    ledger_index: SafeInt
    registrant: Address | None = None
    tx_hash: TxHash
    chain_id: SafeInt
    contract: Address
    block_number: SafeInt | None = None


EVENT_TYPES: dict[str, type[Body]] = {
    "dataset.registered": DatasetRegistered,
    "run.started": RunStarted,
    "run.finished": RunFinished,
    "model.registered": ModelRegistered,
    "evaluation.recorded": EvaluationRecorded,
    "backtest.recorded": BacktestRecorded,
    "compliance.checked": ComplianceChecked,
    "approval.granted": ApprovalGranted,
    "model.promoted": ModelPromoted,
    "decision.recorded": DecisionRecorded,
    "drift.detected": DriftDetected,
    "retrain.requested": RetrainRequested,
    "fl.round": FlRound,
    "subject.erased": SubjectErased,
    "checkpoint.anchored": CheckpointAnchored,
    "policy.registered": PolicyRegistered,
    "model.enrolled": ModelEnrolled,
    "model.documented": ModelDocumented,
    "fl.bank_enrolled": FlBankEnrolled,
    "fl.update_rejected": FlUpdateRejected,
    "key.rotated": KeyRotated,
}

#: Types only their owning component may write (its gate or signature stands behind them):
#: `ledgerml log append` refuses them, naming the owner. `Ledger.append` stays open.
RESERVED_TYPES: dict[str, str] = {
    "evaluation.recorded": "`ledgerml evaluate` (ledgerml.mlops.evaluation)",
    "backtest.recorded": "`ledgerml backtest` (ledgerml.mlops.backtest)",
    "compliance.checked": "`ledgerml check` (the ModelRegistry contract)",
    "approval.granted": "`ledgerml approve` (the ModelRegistry contract)",
    "model.promoted": "`ledgerml promote` (the ModelRegistry contract)",
    "model.enrolled": "`ledgerml chain register` (the ModelRegistry contract)",
    "policy.registered": "`ledgerml chain policy` (the ModelRegistry contract)",
    "decision.recorded": "the decision service (`ledgerml serve` / `ledgerml score`)",
    "drift.detected": "`ledgerml monitor` (the ModelRegistry contract)",
    "retrain.requested": "`ledgerml monitor` (the ModelRegistry contract)",
    "checkpoint.anchored": "`ledgerml chain anchor` (the AuditAnchor contract)",
    "subject.erased": "`ledgerml data erase` (the vault)",
    "key.rotated": "`ledgerml keys rotate`",
}
#: Type prefixes reserved as a group, with their owner.
RESERVED_PREFIXES: dict[str, str] = {
    "fl.": "`ledgerml fl run` (ledgerml.federated)",
    "mlflow.": "the MLflow store plugins (ledgerml.mlflow_plugin, inside `mlflow server`)",
}


def reserved_owner(event_type: object) -> str | None:
    """Who alone may write `event_type`, or None when anyone may append it."""
    if not isinstance(event_type, str):
        return None
    owner = RESERVED_TYPES.get(event_type)
    if owner is None:
        owner = next((o for p, o in RESERVED_PREFIXES.items() if event_type.startswith(p)), None)
    return owner


def refuse_reserved(items: Sequence[tuple[str, Any]], field: str = "type") -> None:
    """Raise `InputError` for the first reserved type among `items` (before any write)."""
    for n, (event_type, _) in enumerate(items):
        owner = reserved_owner(event_type)
        if owner is not None:
            where = f"item {n}: " if len(items) > 1 else ""
            raise InputError(
                f"{where}{event_type!r} is a reserved type: only {owner} writes it",
                field=field,
            )


assert frozenset(EVENT_TYPES) == KNOWN_TYPES, "events.py and _scan.py must list the same types"


# type -> (validator, walk for free-form JSON?), looked up once per entry on the
# hot path; attribute access on pydantic model classes is comparatively slow.
_VALIDATORS: dict[str, tuple[Any, bool]] = {
    name: (model.__pydantic_validator__, model.free_form) for name, model in EVENT_TYPES.items()
}


def validate_body(event_type: object, body: object) -> None:
    """Raise `InputError` naming the field when `body` does not fit `event_type`."""
    entry = _VALIDATORS.get(event_type) if type(event_type) is str else None
    if entry is None:
        if not isinstance(event_type, str) or not is_known_type(event_type):
            known = ", ".join(sorted(EVENT_TYPES))
            raise InputError(
                f"unknown event type {event_type!r} (known: {known}; custom types start with 'x.')",
                field="type",
            )
        if not isinstance(body, dict):
            raise InputError("must be a JSON object", field="body")
        check_json_value(body)  # custom types: free-form JSON, walked for NaN and the like
        return
    if type(body) is not dict and not isinstance(body, dict):
        raise InputError("must be a JSON object", field="body")
    validator, free_form = entry
    # Typed bodies get JSON's guarantees from their models (no NaN, string keys;
    # integers beyond 2**53 are refused by the encoder); free-form fields are walked.
    if free_form:
        check_json_value(body)
    try:
        validator.validate_python(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(
            f"{first['msg']} ({exc.error_count()} problem(s) in a {event_type} body)",
            field=f"body.{where}" if where else "body",
        ) from None


def validate_bodies(items: Sequence[tuple[str, Any]], offset: int = 0) -> None:
    """`validate_body` for a batch; the error names the item (`item N: ...`)."""
    for n, (event_type, body) in enumerate(items, start=offset):
        try:
            validate_body(event_type, body)
        except InputError as exc:
            raise InputError(f"item {n}: {exc}", field=exc.field) from None
