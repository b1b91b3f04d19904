"""MLflow store and artifact plugins: MLflow users get LedgerML's provable record unchanged.

Three lines of setup (docs/mlflow.md)::

    pip install 'ledgerml[mlflow]'
    export LEDGERML_HOME=/srv/ledgerml            # a project made by `ledgerml init`
    mlflow server --backend-store-uri ledgerml+sqlite:////srv/mlflow.db \\
                  --artifacts-destination ledgerml+file:///srv/mlflow-artifacts

or `--backend-store-uri ledgerml+postgresql://USER@HOST/DB` (psycopg 3, extra `postgres`).

- `tracking.LedgerTrackingStore` — MLflow's SQLAlchemy tracking store; every change that
  succeeded is appended to the ledger as an `mlflow.*` entry (values as digests).
- `registry.LedgerRegistryStore` — the model registry store; versions name their model's
  CID; the gated alias (`champion`) and stage Production go through the ModelRegistry
  contract, which alone decides.
- `artifacts.LedgerArtifactRepository` — local files as MLflow writes them, each one also
  in LedgerML's CAS (`ledgerml store verify` checks them).
- `verify` — `ledgerml mlflow verify`: MLflow's database against the ledger. It reads the
  database with `sqlite3` or psycopg 3 only, so the main environment runs it without mlflow.

Only these submodules import mlflow (never `make demo`); `verify`, `records`, `uri` do not.
"""
