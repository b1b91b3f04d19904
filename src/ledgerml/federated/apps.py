"""The Flower apps: one ServerApp (coordinator, trust, ledger) and one ClientApp (a bank).

Both run unchanged in simulation (`flwr.simulation.run_simulation`, in-process) and in
deployment (`flower-superlink` + one `flower-supernode` per bank, separate processes):
they learn everything from `<workdir>/spec.json`, whose folder reaches them as the run
config key `workdir` (deployment) or through `make_server_app` (simulation). A bank's
node configuration may name its own `bank`, `data-dir` and `key-file`; in simulation
the bank is the one at the node's `partition-id` in the spec's bank list.

A round, message by message:

1. `train` → each bank boosts its increment on the global model, signs
   SHA-256(update) with its own key and replies with update, hash, signature, samples.
2. The server checks hash and signature against the bank's enrolled key; a failure is
   appended to the ledger as `fl.update_rejected` and the update is dropped.
3. `evaluate` → every bank measures each accepted candidate's contribution on its own
   validation data (leave-one-out: the relative log-loss change of the averaged update
   without that candidate). When some candidates score below MIN_SCORE, the others are
   evaluated again among themselves (a second `evaluate`), so a poisoned update does not
   distort how the honest ones are judged.
4. Agreement scores → trust → weights (`ledgerml.federated.trust`); the weighted
   aggregate and every update go to the CAS; `fl.round` is appended.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.app.typing import ConfigRecordValues
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from ledgerml.federated import models
from ledgerml.federated.signing import (
    Ed25519Signer,
    load_signer,
    sign_update,
    verify_update,
)
from ledgerml.federated.spec import RunSpec
from ledgerml.federated.trust import MIN_SCORE, TrustState, agreement_scores, distance_scores

PROGRESS_FILE = "progress.jsonl"
RESULT_FILE = "result.json"
ProgressFn = Callable[[dict[str, Any]], None]


# ------------------------------------------------------ typed reads of Flower records


def _config(content: RecordDict, key: str) -> ConfigRecord:
    """The ConfigRecord `key` of a message (every message of ours carries one)."""
    record = content[key]
    if not isinstance(record, ConfigRecord):
        raise TypeError(f"record {key!r} is a {type(record).__name__}, not a ConfigRecord")
    return record


def _int(value: ConfigRecordValues) -> int:
    if isinstance(value, list):
        raise TypeError("expected a number, got a list")
    return int(value)


def _float(value: ConfigRecordValues) -> float:
    if isinstance(value, list):
        raise TypeError("expected a number, got a list")
    return float(value)


def _bytes(value: ConfigRecordValues) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return value


def _list(
    value: ConfigRecordValues,
) -> list[int] | list[float] | list[str] | list[bytes] | list[bool]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------- the bank (ClientApp)


@cache
def _bank_data(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _whoami(msg: Message, context: Context) -> tuple[RunSpec, str, Path, Path]:
    """The run spec, this node's bank, its data file and its key file."""
    cfg = _config(msg.content, "config")
    node = context.node_config
    workdir = str(node.get("workdir") or cfg["workdir"])
    spec = RunSpec.load(workdir)
    bank = str(node["bank"]) if "bank" in node else spec.banks[int(node["partition-id"])]
    data = Path(str(node.get("data-dir") or spec.bank_dir(bank))) / "data.npz"
    key = Path(str(node.get("key-file") or Path(spec.home) / "keys" / "fl" / f"{bank}.pem"))
    return spec, bank, data, key


def _reply(msg: Message, values: dict[str, Any]) -> Message:
    return Message(RecordDict({"reply": ConfigRecord(values)}), reply_to=msg)


client_app = ClientApp()


@client_app.query()
def bank_query(msg: Message, context: Context) -> Message:
    """Which bank this node is (the server maps node ids to enrolled banks)."""
    _, bank, data, _ = _whoami(msg, context)
    y = _bank_data(str(data))["y_train"]
    return _reply(msg, {"bank": bank, "samples": len(y), "positives": int(y.sum())})


@client_app.train()
def bank_train(msg: Message, context: Context) -> Message:
    """Boost an increment on the global model from this bank's data; sign its hash."""
    spec, bank, data_path, key_path = _whoami(msg, context)
    cfg = _config(msg.content, "config")
    round_ = _int(cfg["round"])
    data = _bank_data(str(data_path))
    x, y = data["x_train"], data["y_train"]
    poisoned = spec.poison_bank == bank
    if poisoned and spec.poison_mode == "flip":
        y = 1 - y
    update = models.train_increment(spec, _bytes(cfg["model"]), x, y, round_)
    if poisoned and spec.poison_mode == "scale":
        update = models.scale(spec, update, spec.poison_scale)
    digest = hashlib.sha256(update).hexdigest()
    signer: Ed25519Signer = load_signer(key_path)
    if spec.forge_bank == bank:  # an impostor: right name, wrong key
        signer = Ed25519Signer.generate()
    signature = sign_update(signer, spec.run_id, round_, bank, digest, len(y))
    return _reply(
        msg,
        {
            "bank": bank,
            "update": update,
            "sha256": digest,
            "samples": len(y),
            "signature": signature,
        },
    )


@client_app.evaluate()
def bank_evaluate(msg: Message, context: Context) -> Message:
    """Each candidate's contribution on this bank's validation data: the relative log-loss
    increase of the uniform average of the candidates when that one is left out."""
    spec, bank, data_path, _ = _whoami(msg, context)
    cfg = _config(msg.content, "config")
    data = _bank_data(str(data_path))
    x, y = data["x_val"], data["y_val"]
    base = _bytes(cfg["model"])
    from ledgerml.federated._xgb import logloss

    base_margin = models.predict_margin(spec, base, x)
    base_loss = logloss(base_margin, y)
    cands = [_bytes(c) for c in _list(cfg["candidates"])]

    def loss_with(chosen: list[bytes]) -> float:
        if not chosen:
            return base_loss
        merged = models.aggregate(spec, base, [(c, 1.0 / len(chosen)) for c in chosen])
        return logloss(models.predict_margin(spec, merged, x), y)

    # leave-one-out: how much worse the uniform average gets without each candidate
    with_all = loss_with(cands)
    improvements = [
        (loss_with(cands[:j] + cands[j + 1 :]) - with_all) / max(base_loss, 1e-12)
        for j in range(len(cands))
    ]
    from ledgerml.mlops import average_precision

    return _reply(
        msg,
        {
            "bank": bank,
            "improvements": improvements,
            "val_logloss": base_loss,
            "val_auprc": average_precision(base_margin, y) if y.sum() else 0.0,
        },
    )


# ---------------------------------------------------------------- the server (ServerApp)


def _send(
    grid: Grid, kind: str, per_node: dict[int, dict[str, Any]], group: str, timeout: float
) -> dict[int, ConfigRecord]:
    msgs = [
        Message(
            RecordDict({"config": ConfigRecord(cfg)}),
            dst_node_id=node,
            message_type=kind,
            group_id=group,
        )
        for node, cfg in per_node.items()
    ]
    out: dict[int, ConfigRecord] = {}
    for reply in grid.send_and_receive(msgs, timeout=timeout):
        if reply.has_error():
            raise RuntimeError(
                f"{kind} failed on node {reply.metadata.src_node_id}: {reply.error.reason}"
            )
        out[reply.metadata.src_node_id] = _config(reply.content, "reply")
    if len(out) != len(per_node):
        raise RuntimeError(f"{kind}: {len(per_node) - len(out)} node(s) did not reply in time")
    return out


def _wait_for_nodes(grid: Grid, n: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= n:
            return nodes
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(nodes)} of {n} bank nodes connected")
        time.sleep(0.5)


def enrolled_keys(ledger: Any) -> dict[str, str]:
    """bank → public key (hex) from the ledger's `fl.bank_enrolled` entries (latest wins)."""
    keys: dict[str, str] = {}
    for _, raw in ledger.entries():
        if b'"fl.bank_enrolled"' not in raw:
            continue
        entry = json.loads(raw)
        if entry["type"] == "fl.bank_enrolled":
            keys[entry["body"]["bank"]] = entry["body"]["public_key"]
    return keys


def _score(
    grid: Grid,
    spec: RunSpec,
    model: bytes,
    nodes: list[int],
    bank_of: dict[int, str],
    accepted: dict[str, tuple[bytes, str, int]],
    cands: list[str],
    round_: int,
) -> tuple[dict[int, ConfigRecord], dict[str, float]]:
    """Ask the banks among `cands` to evaluate the candidates `cands`; their replies and
    the agreement scores (capped by the distance score for weight vectors)."""
    if not cands:
        return {}, {}
    evals = _send(
        grid,
        "evaluate",
        {
            n: {
                "workdir": spec.workdir,
                "model": model,
                "candidates": [accepted[b][0] for b in cands],
            }
            for n in nodes
            if bank_of[n] in cands
        },
        str(round_),
        spec.timeout,
    )
    improvement = {
        bank_of[n]: dict(zip(cands, [_float(v) for v in _list(rep["improvements"])], strict=True))
        for n, rep in evals.items()
    }
    scores = agreement_scores(improvement)
    vecs = {b: models.vector(spec, accepted[b][0]) for b in cands}
    if all(v is not None for v in vecs.values()):
        dist = distance_scores({b: v for b, v in vecs.items() if v is not None})
        scores = {b: min(sc, dist[b]) for b, sc in scores.items()}
    return evals, scores


def coordinate(grid: Grid, spec: RunSpec, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run every round of `spec` over `grid`; returns the run's summary (also saved)."""
    from ledgerml.config import ProjectPaths
    from ledgerml.ledger import open_ledger
    from ledgerml.storage import open_store

    workdir = Path(spec.workdir)
    paths = ProjectPaths(Path(spec.home))
    store = open_store(paths)
    t_start = time.perf_counter()
    nodes = _wait_for_nodes(grid, len(spec.banks), spec.timeout)
    hello = _send(grid, "query", {n: {"workdir": spec.workdir} for n in nodes}, "0", spec.timeout)
    bank_of = {n: str(r["bank"]) for n, r in hello.items()}
    if sorted(bank_of.values()) != sorted(spec.banks):
        raise RuntimeError(f"connected banks {sorted(bank_of.values())} != {list(spec.banks)}")
    model = models.initial_model(spec)
    initial_cid = store.add_bytes(model).cid
    state = TrustState.start(spec.banks)
    history: list[dict[str, Any]] = []
    with open_ledger(paths) as ledger:
        keys = enrolled_keys(ledger)
        previous_cid = initial_cid
        for r in range(1, spec.rounds + 1):
            t0 = time.perf_counter()
            replies = _send(
                grid,
                "train",
                {n: {"workdir": spec.workdir, "round": r, "model": model} for n in nodes},
                str(r),
                spec.timeout,
            )
            accepted: dict[str, tuple[bytes, str, int]] = {}
            rejected: list[dict[str, Any]] = []
            for node in nodes:
                rep = replies[node]
                bank = bank_of[node]
                update = _bytes(rep["update"])
                digest = hashlib.sha256(update).hexdigest()
                samples = _int(rep["samples"])
                reason = None
                if str(rep["bank"]) != bank:
                    reason = f"node claims bank {rep['bank']!r}, enrolled as {bank!r}"
                elif bank not in keys:
                    reason = "bank has no enrolled key"
                elif digest != str(rep["sha256"]):
                    reason = "update does not match its stated hash"
                elif not verify_update(
                    keys[bank], spec.run_id, r, bank, digest, samples, _bytes(rep["signature"])
                ):
                    reason = "signature does not verify under the bank's enrolled key"
                if reason is not None:
                    rejected.append(
                        {"bank": bank, "update_hash": digest, "reason": reason, "samples": samples}
                    )
                    continue
                accepted[bank] = (update, digest, samples)
            for rej in rejected:
                ledger.append(
                    "fl.update_rejected",
                    {
                        "run_id": spec.run_id,
                        "round": r,
                        "bank": rej["bank"],
                        "update_hash": rej["update_hash"],
                        "reason": rej["reason"],
                    },
                )
            cand_banks = sorted(accepted)
            evals, scores = _score(grid, spec, model, nodes, bank_of, accepted, cand_banks, r)
            low = [b for b in cand_banks if scores[b] < MIN_SCORE]
            keep = [b for b in cand_banks if b not in low]
            if low and len(keep) >= 2:
                # agreement among the updates that are not clearly harmful: a poisoned
                # update must not distort the context the honest ones are judged in
                _, again = _score(grid, spec, model, nodes, bank_of, accepted, keep, r)
                scores = {b: again.get(b, scores[b]) for b in cand_banks}
            state = state.update(scores)
            weights = state.weights(scores, {b: accepted[b][2] for b in cand_banks})
            model = models.aggregate(
                spec, model, [(accepted[b][0], weights[b]) for b in cand_banks if weights[b] > 0]
            )
            aggregate_cid = store.add_bytes(model).cid
            updates = []
            for b in spec.banks:
                if b in accepted:
                    upd, digest, samples = accepted[b]
                    updates.append(
                        {
                            "bank": b,
                            "update_hash": digest,
                            "samples": samples,
                            "trust": state.trust[b],
                            "weight": weights[b],
                            "signature_ok": True,
                            "update_cid": store.add_bytes(upd).cid,
                            "score": scores.get(b, 0.0),
                        }
                    )
                else:
                    rej = next(x for x in rejected if x["bank"] == b)
                    updates.append(
                        {
                            "bank": b,
                            "update_hash": rej["update_hash"],
                            "samples": rej["samples"],
                            "trust": state.trust[b],
                            "weight": 0.0,
                            "signature_ok": False,
                            "score": 0.0,
                        }
                    )
            val_loss = [_float(rep["val_logloss"]) for rep in evals.values()]
            val_auprc = [_float(rep["val_auprc"]) for rep in evals.values()]
            seconds = time.perf_counter() - t0
            metrics = {
                "accepted": float(len(accepted)),
                "rejected": float(len(rejected)),
                "val_logloss_mean": float(np.mean(val_loss)) if val_loss else 0.0,
                "val_auprc_mean": float(np.mean(val_auprc)) if val_auprc else 0.0,
                "seconds": round(seconds, 3),
            }
            index = ledger.append(
                "fl.round",
                {
                    "round": r,
                    "updates": updates,
                    "aggregate_cid": aggregate_cid,
                    "metrics": metrics,
                    "run_id": spec.run_id,
                    "strategy": spec.strategy,
                    "previous_cid": previous_cid,
                },
            )
            previous_cid = aggregate_cid
            info = {
                "round": r,
                "ledger_index": index,
                "aggregate_cid": aggregate_cid,
                "trust": dict(state.trust),
                "weights": weights,
                "scores": scores,
                "rejected": [x["bank"] for x in rejected],
                "seconds": seconds,
                "metrics": metrics,
            }
            history.append(info)
            with (workdir / PROGRESS_FILE).open("a") as fh:
                fh.write(json.dumps(info, sort_keys=True) + "\n")
            if progress is not None:
                progress(info)
    result = {
        "run_id": spec.run_id,
        "initial_cid": initial_cid,
        "final_cid": previous_cid,
        "rounds": history,
        "seconds": time.perf_counter() - t_start,
    }
    tmp = workdir / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True))
    tmp.replace(workdir / RESULT_FILE)
    return result


def make_server_app(spec: RunSpec | None = None, progress: ProgressFn | None = None) -> ServerApp:
    """A ServerApp for `spec` (simulation), or reading `workdir` from the run config."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_spec = spec or RunSpec.load(str(context.run_config["workdir"]))
        coordinate(grid, run_spec, progress)

    return app


#: The component `flwr-serverapp` loads in deployment mode.
server_app = make_server_app()
