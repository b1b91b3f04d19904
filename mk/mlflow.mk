# mlflow_plugin/ (issue 16): MLflow's store and artifact plugins run inside `mlflow server`,
# which lives in its own environment, .venv-mlflow. mlflow 3.17.2 (3.18.0 is not installable
# here) resolves with the project's pins but moves pyarrow 26.0.1 -> 25.0.1, which can change
# Parquet bytes and so data-set CIDs: the shared .venv keeps its versions (docs/mlflow.md).
# Only `make test` needs it; `make demo` never imports mlflow.

MLFLOW_VENV   := .venv-mlflow
MLFLOW_STAMP  := $(MLFLOW_VENV)/.installed
# The ledger, the CAS and the embedded EVM gate (storage, chain), XGBoost for the example
# training script (ml), pandas for its data set (data). No Flower, no FastAPI service.
MLFLOW_EXTRAS := mlflow,storage,data,ml,chain

$(MLFLOW_STAMP): pyproject.toml
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/pip install --quiet -e '.[$(MLFLOW_EXTRAS)]'
	touch $@

.PHONY: mlflow-venv

mlflow-venv: $(MLFLOW_STAMP)

TEST_SETUP += mlflow-venv
SERVICES   += mlflow
