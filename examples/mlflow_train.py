"""An ordinary MLflow training script: nothing in it knows about LedgerML.

    export MLFLOW_TRACKING_URI=http://127.0.0.1:5000   # a plugin-backed `mlflow server`
    python examples/mlflow_train.py --model-name fraud-xgb

It logs params, a metric per boosting round, the training data set (as an MLflow data set
input and as a CSV artifact), an XGBoost model and a registered model version. The tests run
it unchanged against `mlflow server --backend-store-uri ledgerml+sqlite://…` (docs/mlflow.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import mlflow.data
import mlflow.xgboost
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score

import mlflow


def make_data(seed: int, rows: int = 2000) -> pd.DataFrame:
    """Seeded card-transaction-like data: amount, hour, two behaviour scores, a fraud label."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "amount": rng.lognormal(3.0, 1.0, rows).round(2),
            "hour": rng.integers(0, 24, rows),
            "velocity": rng.normal(0, 1, rows).round(4),
            "merchant_risk": rng.uniform(0, 1, rows).round(4),
        }
    )
    logit = -4 + 1.5 * df["velocity"] + 3 * df["merchant_risk"] + (df["hour"] < 5) * 1.0
    df["is_fraud"] = (rng.uniform(0, 1, rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="card-fraud")
    parser.add_argument("--model-name", default="fraud-xgb")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    df = make_data(args.seed)
    train, test = df.iloc[:1500], df.iloc[1500:]
    features = ["amount", "hour", "velocity", "merchant_risk"]
    params = {"max_depth": 3, "eta": 0.2, "objective": "binary:logistic", "seed": args.seed}

    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name="xgb-baseline") as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({**params, "rounds": args.rounds})
        mlflow.log_input(mlflow.data.from_pandas(train, name="card-train"), context="training")
        data_path = Path(tmp) / "train.csv"
        train.to_csv(data_path, index=False)
        mlflow.log_artifact(str(data_path), artifact_path="data")

        dtrain = xgb.DMatrix(train[features], label=train["is_fraud"])
        dtest = xgb.DMatrix(test[features], label=test["is_fraud"])
        history: dict = {}
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=args.rounds,
            evals=[(dtest, "test")],
            evals_result=history,
            verbose_eval=False,
        )
        for step, loss in enumerate(history["test"]["logloss"]):
            mlflow.log_metric("test_logloss", loss, step=step)
        scores = booster.predict(dtest)
        mlflow.log_metrics(
            {
                "auprc": float(average_precision_score(test["is_fraud"], scores)),
                "roc_auc": float(roc_auc_score(test["is_fraud"], scores)),
            }
        )
        mlflow.set_tag("team", "fraud-analytics")
        info = mlflow.xgboost.log_model(
            booster,
            name="model",
            registered_model_name=args.model_name,
            input_example=test[features].head(3),
        )
    print(
        json.dumps(
            {
                "run_id": run.info.run_id,
                "model_id": info.model_id,
                "model_uri": info.model_uri,
                "registered_version": info.registered_model_version,
            }
        )
    )


if __name__ == "__main__":
    main()
