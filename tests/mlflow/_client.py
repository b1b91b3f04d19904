"""MLflow client steps the tests run in .venv-mlflow (a subprocess: mlflow is not in .venv).

    python _client.py alias NAME ALIAS VERSION      # set a registered-model alias
    python _client.py stage NAME VERSION STAGE      # transition a version's stage
    python _client.py tag NAME VERSION KEY VALUE    # set a model-version tag
    python _client.py version NAME VERSION          # the version as MLflow shows it
    python _client.py track EXPERIMENT NAME         # a run (params, metrics, a tag) and a
                                                    # registered version of it: {run_id, version}
    python _client.py STEP ARGS -- STEP ARGS …      # several steps, one process

Prints one JSON line, a list with per step {"ok": true, ...} or {"ok": false, "error", "code"}.
Only the real `mlflow` client over HTTP (MLFLOW_TRACKING_URI) is used.
"""

from __future__ import annotations

import json
import sys

from mlflow.exceptions import MlflowException

from mlflow import MlflowClient


def track(experiment: str, name: str) -> dict:
    """Params, metrics and a tag through the fluent API, then a registered model version:
    one store call each (log_params and log_metrics are one batch apiece)."""
    import mlflow

    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_params({"max_depth": 4, "eta": 0.1})
        mlflow.log_metrics({"auprc": 0.31, "auc": 0.9})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.set_tag("team", "risk")
    client = MlflowClient()
    client.create_registered_model(name)
    run_id = run.info.run_id
    mv = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    return {"ok": True, "run_id": run_id, "version": str(mv.version)}


def main(argv: list[str]) -> dict:
    client = MlflowClient()
    op, *args = argv
    if op == "track":
        return track(args[0], args[1])
    if op == "alias":
        client.set_registered_model_alias(args[0], args[1], args[2])
    elif op == "stage":
        client.transition_model_version_stage(args[0], args[1], args[2])
    elif op == "tag":
        client.set_model_version_tag(args[0], args[1], args[2], args[3])
    elif op != "version":
        raise SystemExit(f"unknown step {op!r}")
    mv = client.get_model_version(args[0], args[2] if op == "alias" else args[1])
    return {
        "ok": True,
        "aliases": list(mv.aliases),
        "tags": dict(mv.tags),
        "stage": mv.current_stage,
    }


def step(argv: list[str]) -> dict:
    try:
        return main(argv)
    except MlflowException as exc:
        return {"ok": False, "error": exc.message, "code": exc.error_code}


if __name__ == "__main__":
    # several steps in one process (importing mlflow costs seconds): STEP ARGS -- STEP ARGS
    steps: list[list[str]] = [[]]
    for arg in sys.argv[1:]:
        if arg == "--":
            steps.append([])
        else:
            steps[-1].append(arg)
    print(json.dumps([step(s) for s in steps]))
