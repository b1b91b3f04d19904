"""A process that has done its work exits with the code it chose.

Arrow's dataset scanner (`pyarrow.parquet.read_table`, `pandas.read_parquet`) leaves I/O
threads that can still run while the interpreter exits: about one CLI process in twenty
then died with SIGABRT ("terminate called without an active exception") instead of its
exit code, which CI saw as a failed `ledgerml train` (exit -6 for 2). Every package reads
Parquet through `ledgerml.tables.read_parquet`, which these tests hold to.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "ledgerml"
SCANNER_READS = re.compile(r"\b(pq|parquet)\.read_table\(|\bpd\.read_parquet\(|ParquetDataset\(")


def test_no_package_reads_parquet_through_the_dataset_scanner() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SCANNER_READS.search(line)
    ]
    assert not offenders, f"read Parquet with ledgerml.tables.read_parquet: {offenders}"


def test_processes_that_read_parquet_exit_with_their_own_code(tmp_path: Path) -> None:
    """40 processes read a stored table from bytes, as `load_table` does, and exit 2; with
    the scanner, 2 to 3 of them abort."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({f"V{i}": rng.normal(size=20_000) for i in range(9)}), path)
    script = (
        "import sys\nfrom ledgerml.tables import read_parquet\n"
        f"read_parquet(open({str(path)!r}, 'rb').read()).to_pandas()\nsys.exit(2)\n"
    )

    def one(_: int) -> tuple[int, str]:
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        return proc.returncode, proc.stderr[-300:]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(40)))
    assert [code for code, _ in results] == [2] * 40, [r for r in results if r[0] != 2][:3]
