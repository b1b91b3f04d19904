"""Reading Parquet on the calling thread, the one way every package reads a stored table.

`pyarrow.parquet.read_table` goes through Arrow's dataset scanner, whose I/O threads can
still be running while the interpreter exits: about one CLI process in twenty then aborted
with "terminate called without an active exception" (exit -6) after its work was done and
its exit code chosen (apache/arrow#39862; 12 of 200 processes here, 0 of 200 with this
reader: tests/reliability/test_clean_exit.py). `ParquetFile.read(use_threads=False)`
decodes without the scanner or a thread pool; a 79 MB, 284,807-row table takes 32 ms
against the scanner's 16 ms.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import pyarrow as pa


def read_parquet(source: str | Path | bytes | BinaryIO | pa.NativeFile) -> pa.Table:
    """The whole Parquet table at a path, in bytes, or in an open file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(source, bytes):
        source = pa.BufferReader(source)
    with pq.ParquetFile(str(source) if isinstance(source, Path) else source) as parquet:
        return parquet.read(use_threads=False)
