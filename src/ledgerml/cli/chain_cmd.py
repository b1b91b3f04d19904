"""`ledgerml chain …`, `models`, `approve`, `promote`: governance on chain, mirrored in the log.

The work happens in `ledgerml.mlops`; this module parses options and prints results.
A refusal by the contract exits 1 naming the rule or approval; bad input exits 2.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from ledgerml.cli._common import console, err_console, print_json, project
from ledgerml.errors import InputError

if TYPE_CHECKING:  # the chain stack (web3) is imported only by commands that use it
    from ledgerml.chain import ModelStatus, Rule
    from ledgerml.mlops import Mirrored

chain_app = typer.Typer(
    help="The EVM chain: deploy, status, anchors, governance.", no_args_is_help=True
)

_RULE_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.:\-/]*)\s*(>=|<=)\s*(\S+)\s*$")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _number(text: str, *, field: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"{text!r} is not a number", field=field) from None
    if not value.is_finite():
        raise InputError(f"{text!r} is not a finite number", field=field)
    return value


def _parse_rule(text: str) -> Rule:
    from ledgerml.chain import Rule

    m = _RULE_RE.match(text)
    if not m:
        raise InputError(
            f"{text!r} is not METRIC>=VALUE or METRIC<=VALUE (e.g. 'auprc>=0.80')", field="--rule"
        )
    op: Literal[">=", "<="] = ">=" if m.group(2) == ">=" else "<="
    return Rule(m.group(1), op, _number(m.group(3), field="--rule"))


def _parse_metric(text: str) -> tuple[str, Decimal]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise InputError(f"{text!r} is not NAME=VALUE (e.g. 'auprc=0.83')", field="--metric")
    return name.strip(), _number(value, field=f"--metric {name.strip()}")


def _say(result: Mirrored, headline: str) -> None:
    console.print(headline, highlight=False)
    console.print(
        f"  tx {result.tx_hash} (block {result.block_number}, gas {result.gas_used:,})",
        highlight=False,
    )
    for index, event_type in result.entries:
        console.print(f"  ledger #{index} {event_type}", highlight=False)


def _status_json(st: ModelStatus) -> dict[str, Any]:
    data = asdict(st)
    data["approvals"] = dict(st.approvals)
    data["metrics"] = dict(st.metrics)
    return data


# ------------------------------------------------------------------------ chain …


@chain_app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Which chain, how far, the contracts, the role accounts and the anchors."""
    from ledgerml.chain import AnchorLog, load_deployment
    from ledgerml.chain.deploy import deployment_path
    from ledgerml.mlops import project_chain

    paths = project(ctx)
    with project_chain(paths) as chain:
        info = chain.info()
        out: dict[str, Any] = {
            "backend": info.kind,
            "chain_id": info.chain_id,
            "block_number": info.block_number,
            "url": info.url,
            "chain_dir": info.chain_dir,
            "accounts": dict(info.accounts),
            "deployed": False,
            "contracts": {},
            "anchors": None,
        }
        if deployment_path(paths.chain).is_file():
            dep = load_deployment(chain, paths.chain)  # stale record -> InputError, exit 2
            log = AnchorLog(chain, dep.audit_anchor)
            out["deployed"] = True
            out["contracts"] = {
                "ModelRegistry": dep.model_registry,
                "AuditAnchor": dep.audit_anchor,
            }
            out["anchors"] = log.count()
    if as_json:
        print_json(out)
        return
    where = info.url or info.chain_dir
    console.print(
        f"chain {out['chain_id']} ({out['backend']}, {where}), block {out['block_number']}",
        highlight=False,
    )
    if out["deployed"]:
        for name, addr in out["contracts"].items():
            console.print(f"  {name:<14} {addr}", highlight=False)
        console.print(f"  anchors        {out['anchors']}", highlight=False)
    else:
        console.print("  contracts not deployed (run `ledgerml chain deploy`)", highlight=False)
    for role, addr in out["accounts"].items():
        console.print(f"  {role:<20} {addr}", highlight=False)


@chain_app.command("deploy")
def deploy_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Deploy ModelRegistry and AuditAnchor and grant roles (idempotent)."""
    from ledgerml.chain import deploy
    from ledgerml.mlops import project_chain

    paths = project(ctx)
    if not as_json:
        err_console.print("deploying contracts and granting roles…", highlight=False)
    with project_chain(paths) as chain:
        dep = deploy(chain, chain_dir=paths.chain)
    if as_json:
        print_json(
            asdict(dep) | {"accounts": dict(dep.accounts), "code_sha256": dict(dep.code_sha256)}
        )
        return
    console.print(f"deployed on chain {dep.chain_id} ({dep.kind})", highlight=False)
    console.print(f"  ModelRegistry {dep.model_registry}", highlight=False)
    console.print(f"  AuditAnchor   {dep.audit_anchor}", highlight=False)


@chain_app.command("anchor")
def anchor_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Post the ledger's latest signed checkpoint to AuditAnchor."""
    from ledgerml.mlops import anchor

    result = anchor(project(ctx))
    if as_json:
        print_json(result.to_json())
    elif result.already_anchored:
        console.print(
            f"tree size {result.tree_size} is already anchored on chain {result.chain_id}",
            highlight=False,
        )
    else:
        console.print(
            f"anchored tree size {result.tree_size} root {result.root[:16]}… on chain "
            f"{result.chain_id}\n  tx {result.tx_hash} (block {result.block_number})\n"
            f"  ledger #{result.ledger_index} checkpoint.anchored",
            highlight=False,
        )


@chain_app.command("policy")
def policy_cmd(
    ctx: typer.Context,
    policy_id: Annotated[str, typer.Argument(help="Policy id, e.g. fraud-v1.")],
    rules: Annotated[
        list[str], typer.Option("--rule", help="METRIC>=VALUE or METRIC<=VALUE; repeatable.")
    ],
    approvers: Annotated[
        str, typer.Option("--approvers", help="Comma-separated approver roles.")
    ] = "risk_approver,compliance_approver",
    max_psi: Annotated[
        str, typer.Option("--max-psi", help="Drift (PSI) above which retraining is required.")
    ] = "0.25",
    as_json: JsonOpt = False,
) -> None:
    """Create an immutable on-chain policy; mirrored as `policy.registered`."""
    from ledgerml.mlops import GovernanceService

    parsed = [_parse_rule(r) for r in rules]
    roles = [r.strip() for r in approvers.split(",") if r.strip()]
    if not roles:
        raise InputError("name at least one approver role", field="--approvers")
    psi = _number(max_psi, field="--max-psi")
    with GovernanceService.open(project(ctx)) as gov:
        result = gov.set_policy(policy_id, parsed, roles, psi)
    if as_json:
        print_json(result.to_json())
    else:
        _say(result, f"policy {policy_id} registered ({len(parsed)} rules)")


@chain_app.command("register")
def register_cmd(
    ctx: typer.Context,
    cid: Annotated[str, typer.Argument(help="The model artifact's CID.")],
    policy: Annotated[str, typer.Option("--policy", help="Policy id the model is held to.")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="Training data set CID.")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Model name (if not yet in the ledger).")
    ] = None,
    framework: Annotated[
        str | None, typer.Option("--framework", help="Framework (if not yet in the ledger).")
    ] = None,
    signer: Annotated[
        str, typer.Option("--as", help="Role account that signs (needs the model_owner role).")
    ] = "model_owner",
    as_json: JsonOpt = False,
) -> None:
    """Register a model on chain, pointing at its `model.registered` ledger entry."""
    from ledgerml.mlops import GovernanceService

    with GovernanceService.open(project(ctx)) as gov:
        result = gov.register(
            cid, policy, dataset_cid=dataset, name=name, framework=framework, signer=signer
        )
    if as_json:
        print_json(result.to_json())
    else:
        _say(
            result,
            f"model {cid} registered under {policy}; chain points at ledger "
            f"#{result.extra['model_registered_index']}",
        )


@chain_app.command("metrics")
def metrics_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model CID (or 0x model id).")],
    metrics: Annotated[list[str], typer.Option("--metric", help="NAME=VALUE; repeatable.")],
    as_json: JsonOpt = False,
) -> None:
    """Submit validation metrics (as the validator); the contract checks every rule."""
    from ledgerml.mlops import GovernanceService

    values: dict[str, Decimal] = {}
    for text in metrics:
        k, v = _parse_metric(text)
        if k in values:
            raise InputError(f"metric {k} given twice", field="--metric")
        values[k] = v
    with GovernanceService.open(project(ctx)) as gov:
        result = gov.submit_metrics(model, values)
    if as_json:
        print_json(result.to_json())
        return
    verdict = "[green]all rules passed[/]" if result.body["passed"] else "[red]rules failed[/]"
    _say(result, f"metrics submitted: {verdict}")
    for r in result.body["results"]:
        mark = "pass" if r["passed"] else "FAIL"
        console.print(f"    {mark} {r['rule_id']} (value {r['value']:g})", highlight=False)


@chain_app.command("drift")
def drift_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model CID (or 0x model id).")],
    psi: Annotated[str, typer.Option("--psi", help="Population stability index observed.")],
    as_json: JsonOpt = False,
) -> None:
    """Report drift (as the monitor); above the policy limit the model must be retrained."""
    from ledgerml.mlops import GovernanceService

    value = _number(psi, field="--psi")
    with GovernanceService.open(project(ctx)) as gov:
        result = gov.report_drift(model, value)
    if as_json:
        print_json(result.to_json())
        return
    if result.extra.get("retrain_required"):
        head = f"[red]drift {value} above {result.body['threshold']:g}: retraining required[/]"
    else:
        head = f"drift {value} reported (limit {result.body['threshold']:g})"
    _say(result, head)


# -------------------------------------------------------------- top-level verbs


def models_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Models registered on chain, their status, approvals and aliases."""
    from ledgerml.mlops import GovernanceService

    with GovernanceService.open(project(ctx)) as gov:
        rows = gov.models()
    if as_json:
        print_json({"models": [_status_json(m) for m in rows]})
        return
    if not rows:
        console.print("no models registered on chain", highlight=False)
    for m in rows:
        alias = f" alias={m.alias}" if m.alias else ""
        approvals = ",".join(sorted(m.approvals)) or "-"
        console.print(
            f"{m.cid}  {m.status:<16} policy={m.policy_id} ledger#{m.ledger_index} "
            f"approvals={approvals}{alias}",
            highlight=False,
        )


def approve_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model CID (or 0x model id).")],
    role: Annotated[str, typer.Option("--as", help="Approver role, e.g. risk_approver.")],
    as_json: JsonOpt = False,
) -> None:
    """Approve a model as ROLE (signed by that role's account)."""
    from ledgerml.mlops import GovernanceService

    with GovernanceService.open(project(ctx)) as gov:
        result = gov.approve(model, role)
    if as_json:
        print_json(result.to_json())
    else:
        _say(result, f"approved by {role} ({result.body['approver']})")


def promote_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model CID (or 0x model id).")],
    alias: Annotated[str, typer.Option("--alias", help="Alias, e.g. production.")],
    as_json: JsonOpt = False,
) -> None:
    """Promote a model to ALIAS; refused (exit 1) naming the failing rule or missing approval."""
    from ledgerml.mlops import GovernanceService

    with GovernanceService.open(project(ctx)) as gov:
        result = gov.promote(model, alias)
    if as_json:
        print_json(result.to_json())
    else:
        cleared = (
            "; the previous holder's RetrainRequired is cleared (retired)"
            if result.extra.get("retrain_cleared")
            else ""
        )
        _say(result, f"[green]promoted[/] to {alias}{cleared}")


def register(app: typer.Typer) -> None:
    app.add_typer(chain_app, name="chain")
    app.command("models")(models_cmd)
    app.command("approve")(approve_cmd)
    app.command("promote")(promote_cmd)
