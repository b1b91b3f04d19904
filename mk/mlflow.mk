# mlflow_plugin/ (issue 16): MLflow's store and artifact plugins run inside `mlflow server`,
# which lives in its own environment, .venv-mlflow. mlflow 3.17.2 (3.18.0 is not installable
# here) resolves with the project's pins but moves pyarrow 26.0.1 -> 25.0.1, which can change
# Parquet bytes and so data-set CIDs: the shared .venv keeps its versions (docs/mlflow.md).
# Only `make test` needs it; `make demo` never imports mlflow.
#
# .venv-mlflow is a layer over .venv: its own site-packages come first (mlflow, its
# dependencies, pyarrow 25.0.1), then .venv's through a .pth (ledgerml editable, its entry
# points, the chain, xgboost, and psycopg 3 from the `postgres` extra for ledgerml+postgresql://,
# checked below). pip installs only what .venv lacks or pins differently into the layer and
# never touches .venv ("not uninstalling … outside environment"): ~35 s instead of
# ~150 s for a full second environment. The layer is rebuilt whenever .venv is.

MLFLOW_VENV  := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed
MLFLOW_PY    := $(MLFLOW_VENV)/bin/python
_PURELIB     := import sysconfig; print(sysconfig.get_paths()["purelib"])
_MLFLOW_REQ  := import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["mlflow"]))

$(MLFLOW_STAMP): pyproject.toml $(STAMP)
	rm -rf $(MLFLOW_VENV)
	$(PYTHON) -m venv $(MLFLOW_VENV)
	echo "import site; site.addsitedir('$$($(PY) -c '$(_PURELIB)')')" \
	  > "$$($(MLFLOW_PY) -c '$(_PURELIB)')/_ledgerml_main_venv.pth"
	$(MLFLOW_VENV)/bin/pip install --quiet $$($(PY) -c '$(_MLFLOW_REQ)')
	$(MLFLOW_PY) -c 'import mlflow, pyarrow, psycopg, ledgerml.mlflow_plugin.entry; print("mlflow", mlflow.__version__, "pyarrow", pyarrow.__version__, "psycopg", psycopg.__version__)'
	touch $@

.PHONY: mlflow-venv

mlflow-venv: $(MLFLOW_STAMP)

TEST_SETUP += mlflow-venv
SERVICES   += mlflow
