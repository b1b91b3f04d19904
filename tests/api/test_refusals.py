"""Model files LedgerML will not read are refused naming the file, and nothing is written.

A skops file holding a type outside the trusted list, a pickle renamed `.skops`, a
truncated ONNX graph and a random blob: `ledgerml log-model` exits 2 naming the file,
`POST /v1/models` answers 422 naming it, the Python API raises `InputError` on `model`,
and the ledger and the store are unchanged.
No file here is ever unpickled (the pickle is only written).
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

import ledgerml
from ledgerml.datasets.synthetic import fraud_csv
from ledgerml.errors import InputError
from ledgerml.ledger.project import open_ledger
from ledgerml.mlops.datasets import iter_datasets
from ledgerml.tables import read_parquet
from tests.conftest import run_cli, uvicorn_thread

FEATURES = ["V1", "V2", "V3", "V4", "V5", "V6", "Amount"]


class Shady(BaseEstimator, ClassifierMixin):
    """A class skops does not know: its file names `tests.api.test_refusals.Shady`."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Shady:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.tile([0.5, 0.5], (len(x), 1))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> ledgerml.Project:
    root = tmp_path_factory.mktemp("refusals")
    project = ledgerml.init(root / "proj", chain=False)
    project.add_data(fraud_csv(root / "cards.csv", rows=800, seed=3), name="cards", label="Class")
    return project


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import skops.io as sio
    from skl2onnx import to_onnx

    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 7)), (rng.uniform(size=200) < 0.3).astype(int)
    fitted = LogisticRegression().fit(x, y)
    files = {
        "untrusted.skops": sio.dumps(Shady().fit(x, y)),
        "pickled.skops": pickle.dumps(fitted),
        "truncated.onnx": to_onnx(fitted, x[:1].astype(np.float32)).SerializeToString()[:300],
        "blob.bin": random.Random(0).randbytes(4096),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    return {name: d / name for name in files}


def _state(project: ledgerml.Project) -> tuple[int, int]:
    with open_ledger(project.paths) as ledger:
        size = ledger.size()
    blocks = sum(1 for p in project.paths.blocks.rglob("*") if p.is_file())
    return size, blocks


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("untrusted.skops", "untrusted type(s): tests.api.test_refusals.Shady"),
        ("pickled.skops", "a Python pickle"),
        ("truncated.onnx", "not a readable ONNX model"),
        ("blob.bin", "not a model file of a known format"),
    ],
)
def test_cli_refuses_with_exit_2_naming_the_file(
    project: ledgerml.Project, bad_files: dict[str, Path], name: str, why: str
) -> None:
    before = _state(project)
    args = ["log-model", str(bad_files[name]), "--data", "cards", "--target", "Class"]
    proc = run_cli(project.home, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    text = " ".join(proc.stderr.split())
    assert bad_files[name].name in text and why in text, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _state(project) == before  # nothing appended, nothing stored


def test_python_api_names_the_parameter(
    project: ledgerml.Project, bad_files: dict[str, Path]
) -> None:
    before = _state(project)
    for path in bad_files.values():
        with pytest.raises(InputError) as info, project.start_run(data="cards") as run:
            run.log_model(path, features=FEATURES, target="Class")
        assert info.value.field == "model" and path.name in str(info.value)
    with pytest.raises(InputError) as info, project.start_run(data="cards") as run:
        run.log_model(LogisticRegression(), features=["V1", "nope"], target="Class")
    assert info.value.field == "features" and "nope" in str(info.value)
    with pytest.raises(InputError) as info:
        project.start_run(data="no-such-data")
    assert info.value.field == "data"
    with pytest.raises(InputError) as info, project.start_run(data="cards") as run:
        run.log_model(object(), features=FEATURES, target="Class")
    assert info.value.field == "model"
    assert _state(project) == before


KEYS = {"admin": "admin-key-0123456789ab", "scorer": "scorer-key-0123456789"}


@pytest.fixture(scope="module")
def service(project: ledgerml.Project) -> Iterator[str]:
    """The decision service over real HTTP (uvicorn on a free port) for this project."""
    from ledgerml.serving.app import create_app

    with uvicorn_thread(create_app(project.paths, api_keys=KEYS), timeout=30) as url:
        yield url


def _upload(url: str, path: Path, role: str = "admin") -> httpx.Response:
    return httpx.post(
        f"{url}/v1/models",
        params={"filename": path.name, "data": "cards", "target": "Class"},
        content=path.read_bytes(),
        headers={"Authorization": f"Bearer {KEYS[role]}"},
        timeout=60,
    )


@pytest.mark.parametrize("name", ["untrusted.skops", "pickled.skops", "truncated.onnx", "blob.bin"])
def test_http_refuses_with_422_naming_the_file(
    project: ledgerml.Project, bad_files: dict[str, Path], service: str, name: str
) -> None:
    before = _state(project)
    got = _upload(service, bad_files[name])
    assert got.status_code == 422, got.text
    assert name in got.text and "model" in got.text
    assert _state(project) == before


def test_http_records_a_readable_model(
    project: ledgerml.Project, service: str, tmp_path: Path
) -> None:
    """The same endpoint takes a real LightGBM text model: 201, three entries, one block."""
    import lightgbm as lgb

    from ledgerml.storage import open_store

    rec = next(r for r in iter_datasets(project.paths) if r.name == "cards")
    table = read_parquet(open_store(project.paths).read_bytes(rec.cid))
    x = np.column_stack([table.column(f).to_numpy() for f in FEATURES])
    y = table.column("Class").to_numpy()
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, y), 10)
    path = tmp_path / "model.txt"
    path.write_text(booster.model_to_string())
    assert _upload(service, path, role="scorer").status_code == 403  # admin only
    size, _ = _state(project)
    got = _upload(service, path)
    assert got.status_code == 201, got.text
    body = got.json()
    assert body["model_type"] == "lightgbm" and body["features"] == FEATURES
    assert _state(project)[0] == size + 3  # run.started, run.finished, model.registered


def test_monitor_will_not_retrain_a_model_it_has_no_recipe_for(
    project: ledgerml.Project,
) -> None:
    """Drift of an external model is measured, but `--retrain` is refused up front."""
    import lightgbm as lgb

    from ledgerml.retrain import monitor

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 7)), (rng.uniform(size=300) < 0.2).astype(int)
    with project.start_run(data="cards") as run:
        model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
        cid = run.log_model(model, features=FEATURES, target="Class").cid
    before = _state(project)
    with pytest.raises(InputError) as info:
        monitor(project.paths, cid, "cards", retrain=True)
    assert info.value.field == "--retrain" and "lightgbm" in str(info.value)
    assert _state(project) == before
