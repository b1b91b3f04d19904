"""Register data sets on the ledger, with personal data moved into the vault; erase subjects.

Why: a model is only as provable as its training data. Registering a table
stores it as *deterministic Parquet* in the content-addressed store (same input
→ same bytes → same CID, so anyone can re-derive the ID) and appends a
`dataset.registered` entry. Personal data never enters the CAS or the ledger in
clear (GDPR Art. 5(1)(c), 17; EDPB Guidelines 02/2025):

* each `pii` cell is encrypted into the vault under its data subject (the value
  of `subject_col`), and the stored table carries the salted value commitment
  (hex) the vault computes instead of the clear value;
* the subject column itself is replaced by the subject commitment, so rows of
  one subject stay linkable (grouped splits, erasure bookkeeping) but not to a
  person once the subject is erased.

`erase_subject` destroys the subject's key and salt (crypto-shredding) and
appends `subject.erased`; the stored Parquet and the ledger are untouched, so
everything still verifies, but nothing links back to the person any more.

Usage::

    rec = register_dataset(paths, "customers.csv", "customers-2026q3",
                           pii=["name", "iban"], subject_col="customer_id", label="default")
    rec.cid, rec.rows, rec.ledger_index
    erase_subject(paths, "C-1042")          # -> subject commitment (hex)

All validation happens before anything is written. No error names a cell's
value, of any column: a message says the line, row or column number instead,
because it may end up in a terminal log or a ticket (the PII rule of
docs/threat-model.md). The vault writes are one
transaction that commits only after the CAS add and the ledger append
succeeded; blocks left in the CAS by a failed ledger append are harmless
(content-addressed, idempotent).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledgerml.config import ProjectPaths
from ledgerml.crypto.canonical import canonical_json
from ledgerml.errors import InputError
from ledgerml.ledger import open_ledger
from ledgerml.ledger.events import validate_body
from ledgerml.ledger.project import AnyLedger
from ledgerml.storage import Vault, VaultBatch, open_store
from ledgerml.storage.vault import MAX_ID_LEN, subject_hash

if TYPE_CHECKING:  # pyarrow is imported lazily: CLI start-up time
    import pyarrow as pa

#: Parquet writer settings, fixed so the bytes (and so the CID) depend only on
#: the table and the pyarrow version (its `created_by` string is in the footer).
PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "data_page_version": "1.0",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 131_072,
    "data_page_size": 1 << 20,
    "write_batch_size": 1024,
    "dictionary_pagesize_limit": 1 << 20,
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": False,
    "use_byte_stream_split": False,
}

#: The CSV reader's first try infers types from the first block (fast, parallel);
#: on a conversion error we re-read with the whole file as one block.
_MAX_SINGLE_BLOCK = (1 << 31) - 1

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DatasetRecord:
    """What `dataset.registered` recorded, plus where it sits in the ledger."""

    name: str
    cid: str
    size: int | None  # bytes of the stored Parquet; None when read back from the ledger
    rows: int
    columns: tuple[str, ...]
    dtypes: dict[str, str] = field(hash=False)
    schema_hash: str
    source_sha256: str
    label: str | None
    pii_columns: tuple[str, ...]
    subject_column: str | None
    source: str | None
    writer: str | None
    ledger_index: int | None  # None for records read back without their index

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cid": self.cid,
            "size": self.size,
            "rows": self.rows,
            "columns": list(self.columns),
            "dtypes": dict(self.dtypes),
            "schema_hash": self.schema_hash,
            "source_sha256": self.source_sha256,
            "label": self.label,
            "pii_columns": list(self.pii_columns),
            "subject_column": self.subject_column,
            "source": self.source,
            "writer": self.writer,
            "ledger_index": self.ledger_index,
        }


# -- reading ------------------------------------------------------------------------


def _sha256_file(path: Path, *, utf8: bool = False) -> str:
    """SHA-256 of the file; with `utf8`, also refuse bytes that are not UTF-8 (naming the line).

    One pass: pyarrow would otherwise turn such a column into binary silently, or
    fail later with a message that quotes the bytes. ASCII chunks skip the decoder.
    """
    h = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file before `piece`
    pending = 0  # bytes of an unfinished character the decoder holds
    with path.open("rb") as fh:
        while piece := fh.read(1 << 20):
            h.update(piece)
            if utf8 and (pending or not piece.isascii()):
                try:
                    decoder.decode(piece)
                except UnicodeDecodeError as exc:
                    raise _not_utf8(path, offset - pending + exc.start) from None
                pending = len(decoder.getstate()[0])
            offset += len(piece)
    if pending:
        raise _not_utf8(path, offset - pending)
    return h.hexdigest()


def _not_utf8(path: Path, at: int) -> InputError:
    """Where the first invalid byte is, by line and offset (never the bytes themselves)."""
    line, left = 1, at
    with path.open("rb") as fh:
        while left > 0 and (piece := fh.read(min(1 << 20, left))):
            line += piece.count(b"\n")
            left -= len(piece)
    return InputError(
        f"{path} is not UTF-8 text: line {line} (byte {at}) has an invalid byte; re-encode "
        "the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
        field="path",
    )


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def _read_csv(path: Path) -> pa.Table:
    import pyarrow as pa
    from pyarrow import csv

    size = path.stat().st_size
    attempts: list[tuple[csv.ReadOptions, csv.ParseOptions]] = [
        (csv.ReadOptions(use_threads=True), csv.ParseOptions()),
        # whole file as one block: type inference sees every value
        (
            csv.ReadOptions(use_threads=True, block_size=min(size + 1, _MAX_SINGLE_BLOCK)),
            csv.ParseOptions(),
        ),
        # quoted values with line breaks in them
        (
            csv.ReadOptions(use_threads=True, block_size=min(size + 1, _MAX_SINGLE_BLOCK)),
            csv.ParseOptions(newlines_in_values=True),
        ),
    ]
    first_error: Exception | None = None
    for read_opts, parse_opts in attempts:
        try:
            return csv.read_csv(path, read_options=read_opts, parse_options=parse_opts)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
            first_error = first_error or exc
    raise InputError(
        f"{path} does not parse as CSV: {_csv_problem(path, first_error)}", field="path"
    )


#: pyarrow messages known to quote no cell, shown as they are.
_SAFE_CSV_MESSAGES = ("Empty CSV file", "CSV parse error: Empty CSV file or block")


def _csv_problem(path: Path, error: Exception | None) -> str:
    """Where the CSV is broken, by line and column numbers only.

    pyarrow's messages quote the offending row (`Expected 5 columns, got 6: C-2077,
    <name>,<IBAN>,…`) or value, so they are never shown; a second, single-threaded
    read with a row handler gives the line number and the field counts instead.
    """
    import pyarrow as pa
    from pyarrow import csv

    found: list[tuple[int, int, int | None]] = []

    def first_bad_row(row: Any) -> str:
        found.append((row.expected_columns, row.actual_columns, row.number))
        return "error"

    with suppress(pa.ArrowException, UnicodeDecodeError):
        csv.read_csv(
            path,
            read_options=csv.ReadOptions(use_threads=False),
            parse_options=csv.ParseOptions(invalid_row_handler=first_bad_row),
        )
    if found:
        expected, actual, number = found[0]
        where = f"line {number}" if number is not None else "a row"
        return f"{where} has {actual} fields where the header has {expected}"
    message = str(error or "").splitlines()[0] if error else ""
    if message.startswith(_SAFE_CSV_MESSAGES):
        return message
    parts = [
        f"{label} {m.group(1)}"
        for label, pattern in (
            ("column", r"In CSV column #(\d+)"),
            ("line", r"Row #(\d+)"),
            ("cannot convert to", r"conversion error to ([\w\[\], ]+?):"),
        )
        if (m := re.search(pattern, message))
    ]
    detail = ", ".join(parts) if parts else type(error).__name__ if error else "unknown error"
    return f"{detail} (the reader's own message is not shown: it may quote personal data)"


def _read_table(path: Path) -> pa.Table:
    import pyarrow as pa

    if _is_parquet(path):
        from ledgerml.tables import read_parquet

        try:
            table = read_parquet(path)
        except (pa.ArrowException, OSError) as exc:
            # pyarrow's message may quote bytes of the file: only its kind is shown
            raise InputError(
                f"{path} is not a readable Parquet file ({type(exc).__name__}: truncated, "
                "damaged or an unsupported encoding)",
                field="path",
            ) from None
    else:
        table = _read_csv(path)
    # Only the data counts: drop pandas/writer metadata that varies by version.
    return table.replace_schema_metadata(None)


# -- validation ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """A validated registration: what will be written, decided before any write."""

    table: Any  # pa.Table, as read
    source_sha256: str
    pii: tuple[str, ...]
    subject_col: str | None
    label: str | None
    subjects: tuple[str, ...]  # per row ('' when no subject column)
    values: dict[str, dict[str, str]]  # subject -> {pii column -> clear value}
    cells: dict[str, tuple[str | None, ...]]  # pii column -> per-row value (None = null)


def _as_text(column: Any) -> list[str | None]:
    """A column's values as strings (Arrow's own cast, so it is the same everywhere)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.to_pylist()
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return [None if v is None else v.hex() for v in column.to_pylist()]
    try:
        return pc.cast(column, pa.string()).to_pylist()
    except pa.ArrowNotImplementedError:
        return [None if v is None else str(v) for v in column.to_pylist()]


def _split_columns(value: Sequence[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return tuple(out)


def _check_label(table: pa.Table, label: str) -> None:
    """A label is 0/1 with no gaps: anything else would leave an untrainable data set on the
    append-only ledger. Counts and types only in the message (no cell values: PII rule)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(label)
    kind = col.type
    if pa.types.is_boolean(kind):
        col, kind = pc.cast(col, pa.int8()), pa.int8()
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise InputError(
            f"label {label!r} is {kind}, not 0/1 numbers (encode it as 0/1 before registering)",
            field="--label",
        )
    values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    missing = int(np.isnan(values).sum())  # nulls come out as NaN
    if missing:
        raise InputError(
            f"label {label!r} has {missing} missing value(s) of {len(values)} rows",
            field="--label",
        )
    other = int((~np.isin(values, (0.0, 1.0))).sum())
    if other:
        raise InputError(
            f"label {label!r} must be 0 or 1: {other} of {len(values)} rows hold another value",
            field="--label",
        )


def _plan(
    source_path: Path,
    pii: tuple[str, ...],
    subject_col: str | None,
    label: str | None,
) -> _Plan:
    if not source_path.exists():
        raise InputError(f"no such file: {source_path}", field="path")
    if not source_path.is_file():
        raise InputError(f"not a regular file: {source_path}", field="path")
    try:
        is_parquet = _is_parquet(source_path)
        source_sha = _sha256_file(source_path, utf8=not is_parquet)
        table = _read_table(source_path)
    except OSError as exc:
        raise InputError(f"cannot read {source_path}: {exc.strerror}", field="path") from None

    names = table.column_names
    if not names:
        raise InputError(f"{source_path} has no columns", field="path")
    if any(not n.strip() for n in names):
        raise InputError(f"{source_path} has a column without a name", field="path")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"duplicate column names: {', '.join(dupes)}", field="path")
    if table.num_rows == 0:
        raise InputError(f"{source_path} has no data rows", field="path")

    known = set(names)

    def must_exist(col: str, fld: str) -> None:
        if col not in known:
            shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
            raise InputError(f"no column {col!r} in the table (columns: {shown})", field=fld)

    for col in pii:
        must_exist(col, "--pii")
    if subject_col is not None:
        must_exist(subject_col, "--subject-col")
    if label is not None:
        must_exist(label, "--label")
    if pii and subject_col is None:
        raise InputError(
            "PII values are stored per data subject: name the subject column", field="--subject-col"
        )
    if subject_col is not None and subject_col in pii:
        raise InputError(
            f"{subject_col!r} is the subject column (always replaced by the subject "
            "commitment); do not list it in --pii",
            field="--pii",
        )
    if label is not None and (label in pii or label == subject_col):
        raise InputError(f"{label!r} cannot be both the label and personal data", field="--label")
    if label is not None:
        _check_label(table, label)

    subjects: list[str] = []
    values: dict[str, dict[str, str]] = {}
    cells: dict[str, tuple[str | None, ...]] = {}
    if subject_col is not None:
        subjects_raw = _as_text(table.column(subject_col))
        for row, subject in enumerate(subjects_raw, start=1):
            if subject is None or subject == "":
                raise InputError(f"row {row} has no subject id", field="--subject-col")
            if len(subject) > MAX_ID_LEN:
                raise InputError(
                    f"row {row}: subject id longer than {MAX_ID_LEN} characters",
                    field="--subject-col",
                )
        subjects = [str(s) for s in subjects_raw]
        first_row: dict[tuple[str, str], int] = {}
        for col in pii:
            col_values = _as_text(table.column(col))
            cells[col] = tuple(col_values)
            for row, (subject, value) in enumerate(zip(subjects, col_values, strict=True), 1):
                if value is None:
                    continue
                held = values.setdefault(subject, {})
                previous = held.get(col)
                if previous is None:
                    held[col] = value
                    first_row[(subject, col)] = row
                elif previous != value:
                    # no values or ids in the message: it may end up in logs
                    raise InputError(
                        f"rows {first_row[(subject, col)]} and {row} give one subject two "
                        f"different values in column {col!r}",
                        field="--pii",
                    )
        for subject in subjects:
            values.setdefault(subject, {})
    return _Plan(
        table=table,
        source_sha256=source_sha,
        pii=pii,
        subject_col=subject_col,
        label=label,
        subjects=tuple(subjects),
        values=values,
        cells=cells,
    )


# -- writing ------------------------------------------------------------------------


def schema_hash(columns: Sequence[tuple[str, str]]) -> str:
    """SHA-256 of the RFC 8785 JSON of [[name, dtype], …] in column order."""
    return hashlib.sha256(canonical_json([[n, t] for n, t in columns])).hexdigest()


def parquet_writer() -> str:
    """Names the Parquet settings (`PARQUET_OPTIONS`, "v1") and the pyarrow that applied them."""
    import pyarrow as pa

    return f"parquet/v1 pyarrow {pa.__version__}"


def parquet_bytes(table: pa.Table) -> memoryview:
    """Deterministic Parquet: fixed writer settings, one chunk per column, no metadata.

    A zero-copy view of Arrow's buffer (the ULB table is ~77 MB of Parquet).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = table.replace_schema_metadata(None).combine_chunks()
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return memoryview(sink.getvalue())


def _vault_commit_rows(
    batch: VaultBatch, values: dict[str, dict[str, str]]
) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Encrypt every subject's PII inside the caller's open vault batch (one transaction).

    Returns (subject -> subject commitment, (subject, column) -> value commitment).
    """
    subject_c: dict[str, str] = {}
    value_c: dict[tuple[str, str], str] = {}
    for subject, cols in values.items():
        for col, commitment in batch.put_many(subject, cols).items():
            value_c[(subject, col)] = commitment
        subject_c[subject] = batch.subject_commitment(subject)
    return subject_c, value_c


def _pseudonymised(
    plan: _Plan, subject_c: dict[str, str], value_c: dict[tuple[str, str], str]
) -> pa.Table:
    """The table with the subject column and PII columns replaced by commitments."""
    import pyarrow as pa

    table = plan.table
    if plan.subject_col is None:
        return table
    subjects = plan.subjects
    idx = table.column_names.index(plan.subject_col)
    table = table.set_column(
        idx, plan.subject_col, pa.array([subject_c[s] for s in subjects], pa.string())
    )
    for col in plan.pii:
        idx = table.column_names.index(col)
        committed = [
            None if v is None else value_c[(s, col)]
            for s, v in zip(subjects, plan.cells[col], strict=True)
        ]
        table = table.set_column(idx, col, pa.array(committed, pa.string()))
    return table


def register_dataset(
    paths: ProjectPaths,
    source_path: str | os.PathLike[str],
    name: str,
    pii: Sequence[str] | str | None = (),
    subject_col: str | None = None,
    label: str | None = None,
    *,
    source: str | None = None,
    progress: Progress | None = None,
) -> DatasetRecord:
    """Validate, pseudonymise, store as deterministic Parquet and record `dataset.registered`.

    `pii` columns (a list, or comma-separated) go into the vault per subject of
    `subject_col`; `source` is a free note for the entry (default: the file name).
    Raises `InputError` naming the field, before anything is written.
    """
    say = progress or (lambda _msg: None)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InputError("must be 1 to 200 characters", field="--name")
    pii_cols = _split_columns(pii)
    src = Path(source_path).expanduser()
    say(f"reading {src.name}")
    import pyarrow as pa

    try:
        plan = _plan(src, pii_cols, subject_col, label)
    except (pa.ArrowException, UnicodeDecodeError) as exc:  # unforeseen: may quote a value
        raise InputError(
            f"{src} could not be read as a table ({type(exc).__name__}; the reader's message "
            "is not shown: it may quote personal data)",
            field="path",
        ) from None
    source_note = source if source is not None else src.name

    # Shape of the entry, checked now (the CID and schema are filled in below).
    stored_types = _stored_types(plan)
    body: dict[str, Any] = {
        "name": name,
        "cid": "b" + "a" * 58,
        "rows": plan.table.num_rows,
        "columns": [n for n, _ in stored_types],
        "dtypes": dict(stored_types),
        "schema_hash": schema_hash(stored_types),
        "source_sha256": plan.source_sha256,
        "label": plan.label,
        "pii_columns": list(plan.pii),
        "subject_column": plan.subject_col,
        "source": source_note,
        "writer": parquet_writer(),
    }
    validate_body("dataset.registered", body)

    store = open_store(paths)
    vault = Vault(paths.vault_db) if plan.subject_col is not None else None
    with vault.batch() if vault is not None else nullcontext() as batch:
        subject_c: dict[str, str] = {}
        value_c: dict[tuple[str, str], str] = {}
        if batch is not None:
            say(f"{len(plan.pii)} PII column(s), {len(plan.values):,} subjects into the vault")
            subject_c, value_c = _vault_commit_rows(batch, plan.values)
        table = _pseudonymised(plan, subject_c, value_c)
        say("writing Parquet")
        data = parquet_bytes(table)
        say(f"adding {len(data):,} bytes to the store")
        added = store.add_bytes(data)
        body["cid"] = added.cid
        with open_ledger(paths) as ledger:
            index = ledger.append("dataset.registered", body)
        # the vault transaction commits on leaving this block
    return DatasetRecord(
        name=name,
        cid=added.cid,
        size=added.size,
        rows=body["rows"],
        columns=tuple(body["columns"]),
        dtypes=body["dtypes"],
        schema_hash=body["schema_hash"],
        source_sha256=plan.source_sha256,
        label=plan.label,
        pii_columns=plan.pii,
        subject_column=plan.subject_col,
        source=source_note,
        writer=body["writer"],
        ledger_index=index,
    )


def check_can_extend(
    history: DatasetRecord, window: DatasetRecord, *, field_name: str = "--window"
) -> None:
    """`InputError` on `field_name` unless `window` has `history`'s table shape (columns,
    types, label, PII and subject columns): what an expanding window needs."""

    def kind(dtype: str) -> str:
        # CSV inference may read one month's amounts as int64 and the next as double: both
        # are numbers, and `_unified` makes them double
        numeric = dtype.startswith(("int", "uint", "float", "double", "bool"))
        return "number" if numeric else dtype

    def shape(r: DatasetRecord) -> tuple[Any, ...]:
        kinds = {c: kind(t) for c, t in r.dtypes.items()}
        return (frozenset(r.columns), kinds, frozenset(r.pii_columns), r.subject_column)

    if shape(history) != shape(window):
        diff = [
            what
            for what, a, b in zip(
                ("columns", "column types", "PII columns", "subject column"),
                shape(history),
                shape(window),
                strict=True,
            )
            if a != b
        ]
        raise InputError(
            f"data set {window.name!r} cannot extend {history.name!r}: their "
            f"{', '.join(diff)} differ (an expanding window needs the same table shape; "
            "retrain on the window alone instead)",
            field=field_name,
        )


@dataclass(frozen=True)
class Extension:
    """An expanding window, checked and built but not yet stored or recorded."""

    history: DatasetRecord
    window: DatasetRecord
    table: pa.Table = field(hash=False, repr=False)


def plan_extension(
    paths: ProjectPaths,
    history: DatasetRecord,
    window: DatasetRecord,
    *,
    time_column: str | None = None,
    field_name: str = "--window",
) -> Extension:
    """`history` followed by `window` as one table; nothing is written (see `combine_datasets`).

    `InputError` on `field_name` when the shapes differ (`check_can_extend`) or when the
    window starts before the history ends by `time_column`: such a window is not new data
    (e.g. a slice of the training data) and concatenating it would repeat rows."""
    import numpy as np
    import pyarrow as pa

    from ledgerml.mlops.models._base import column_array
    from ledgerml.tables import read_parquet

    check_can_extend(history, window, field_name=field_name)
    store = open_store(paths)
    parts = [read_parquet(store.read_bytes(r.cid)) for r in (history, window)]
    if time_column is not None and time_column in parts[0].column_names:
        ends = float(np.nanmax(column_array(parts[0], time_column)))
        starts = float(np.nanmin(column_array(parts[1], time_column)))
        if starts < ends:
            raise InputError(
                f"data set {window.name!r} starts before {history.name!r} ends (by "
                f"{time_column}): it is not new data, and an expanding window would repeat "
                "rows; retrain on the window alone (--window-only)",
                field=field_name,
            )
    # a column whose number type differs between the parts becomes double in both
    schema = pa.schema(
        [
            f if f.type == parts[1].schema.field(f.name).type else f.with_type(pa.float64())
            for f in parts[0].schema
        ]
    )
    table = pa.concat_tables([t.select(schema.names).cast(schema) for t in parts])
    return Extension(history, window, table)


def combine_datasets(
    paths: ProjectPaths, extension: Extension, *, name: str | None = None
) -> DatasetRecord:
    """Store and record an expanding window (`plan_extension`) as one registered data set.

    Why a data set of its own: a model trained on both must name one training data set
    (lineage, the leakage screen, backtests and `evaluate` all read it by CID). Both parts
    are already stored pseudonymised, so their rows are concatenated as stored — PII stays
    commitments, and erasing a subject shreds the same vault keys for all three tables.
    Recording the same parts under the same name again returns the existing record.
    """
    history, window = extension.history, extension.window
    label = (name or f"{history.name}+{window.name}")[:200]
    data = parquet_bytes(extension.table)
    dtypes = {f.name: str(f.type) for f in extension.table.schema}
    store = open_store(paths)
    cid = store.add_bytes(data).cid
    for rec in iter_datasets(paths):
        if rec.cid == cid and rec.name == label:
            return rec
    body: dict[str, Any] = {
        "name": label,
        "cid": cid,
        "rows": extension.table.num_rows,
        "columns": list(extension.table.column_names),
        "dtypes": dtypes,
        "schema_hash": schema_hash(list(dtypes.items())),
        # no source file: the digest of the stored bytes, and the parts named in `source`
        "source_sha256": hashlib.sha256(data).hexdigest(),
        "label": history.label or window.label,
        "pii_columns": list(history.pii_columns),
        "subject_column": history.subject_column,
        "source": f"expanding window: {history.cid} then {window.cid}",
        "writer": parquet_writer(),
    }
    validate_body("dataset.registered", body)
    with open_ledger(paths) as ledger:
        index = ledger.append("dataset.registered", body)
    return DatasetRecord(
        name=label,
        cid=cid,
        size=len(data),
        rows=body["rows"],
        columns=tuple(body["columns"]),
        dtypes=dtypes,
        schema_hash=body["schema_hash"],
        source_sha256=body["source_sha256"],
        label=body["label"],
        pii_columns=history.pii_columns,
        subject_column=history.subject_column,
        source=body["source"],
        writer=body["writer"],
        ledger_index=index,
    )


def _stored_types(plan: _Plan) -> list[tuple[str, str]]:
    """(name, Arrow type) of the stored table: commitments are strings."""
    replaced = set(plan.pii) | ({plan.subject_col} if plan.subject_col else set())
    return [(f.name, "string" if f.name in replaced else str(f.type)) for f in plan.table.schema]


# -- erasure and listing ------------------------------------------------------------


def erase_subject(paths: ProjectPaths, subject: str, reason: str | None = None) -> str:
    """Crypto-shred `subject` in the vault and record `subject.erased`; returns the commitment.

    An unknown (or already erased) subject is an `InputError`, nothing recorded. An erasure
    a crash interrupted after the shredding (see `Vault.pending_erasures`) is recorded first;
    re-running the interrupted command then succeeds with that erasure's commitment.
    """
    if not isinstance(subject, str) or not subject:
        raise InputError("must name a data subject", field="--subject")
    body: dict[str, Any] = {"subject_commitment": "0" * 64}
    if reason is not None:
        body["reason"] = reason
    validate_body("subject.erased", body)
    vault = Vault(paths.vault_db)
    with open_ledger(paths) as ledger:  # opened first: a broken ledger stops us before erasing
        finished = _finish_pending_erasures(vault, ledger)
        if not vault.has(subject):
            done = finished.get(subject_hash(subject))
            if done is not None:
                return done
            raise InputError(
                "no such data subject in the vault (unknown or already erased)", field="--subject"
            )
        commitment = vault.erase(subject, reason=reason)
        ledger.append("subject.erased", {**body, "subject_commitment": commitment})
        vault.settle_erasure(commitment)
    return commitment


def _finish_pending_erasures(vault: Vault, ledger: AnyLedger) -> dict[bytes, str]:
    """Record every shredded subject whose `subject.erased` entry a crash prevented.

    Returns subject hash -> commitment of each erasure settled here.
    """
    finished: dict[bytes, str] = {}
    for pending in vault.pending_erasures():
        recorded = any(
            entry["body"].get("subject_commitment") == pending.commitment
            for _, entry in ledger.entries_of_type(
                "subject.erased", containing=pending.commitment.encode()
            )
        )
        if not recorded:
            body: dict[str, Any] = {"subject_commitment": pending.commitment}
            if pending.reason is not None:
                body["reason"] = pending.reason
            ledger.append("subject.erased", body)
        vault.settle_erasure(pending.commitment)
        finished[pending.subject_hash] = pending.commitment
    return finished


def iter_datasets(paths: ProjectPaths) -> Iterator[DatasetRecord]:
    """Every `dataset.registered` entry in ledger order."""

    with open_ledger(paths) as ledger:
        for index, entry in ledger.entries_of_type("dataset.registered"):
            b = entry["body"]
            yield DatasetRecord(
                name=b["name"],
                cid=b["cid"],
                size=None,
                rows=b["rows"],
                columns=tuple(b["columns"]),
                dtypes=b.get("dtypes", {}),
                schema_hash=b["schema_hash"],
                source_sha256=b.get("source_sha256") or "",
                label=b.get("label"),
                pii_columns=tuple(b.get("pii_columns", [])),
                subject_column=b.get("subject_column"),
                source=b.get("source"),
                writer=b.get("writer"),
                ledger_index=index,
            )
