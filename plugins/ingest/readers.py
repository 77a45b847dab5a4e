"""Reading helpers shared by the file-based ingest plugins.

Every failure to find or read a file becomes a ``DataContractError`` that names the table
and the file, so a person sees which input to fix instead of a bare Polars or NumPy error.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path

import numpy as np
import polars as pl

from causalrec_assets.contracts import DataContractError
from causalrec_resources.settings import current_settings

TABLE_SUFFIXES: tuple[str, ...] = (".parquet", ".csv")  # in order of preference

# What a damaged file can raise from Polars' Rust core (a panic is not an Exception).
_READ_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError)


def resolve_dir(path: str | Path, plugin: str) -> Path:
    """The dataset folder: the configured ``path``, else ``$CAUSALREC_DATA``; must be a directory."""
    raw = str(path) or current_settings().data
    if not raw:
        raise DataContractError(f"{plugin} ingest: no dataset directory given (set config `path`)")
    directory = Path(raw).expanduser()
    if not directory.is_dir():
        raise DataContractError(f"{plugin} ingest: dataset directory {directory} does not exist")
    return directory


def table_candidates(directory: Path, name: str) -> list[Path]:
    """The file names a canonical table may have, preferred first."""
    return [directory / f"{name}{suffix}" for suffix in TABLE_SUFFIXES]


def find_table(directory: Path, name: str) -> Path | None:
    """The file holding table ``name`` (Parquet preferred over CSV), or a folder ``name/`` of
    part files (e.g. one file per day of interactions), or None."""
    found = next((p for p in table_candidates(directory, name) if p.is_file()), None)
    if found is None and part_files(directory / name):
        check_table_folder(directory, directory / name, name)
        return directory / name
    return found


def check_table_folder(directory: Path, folder: Path, table: str) -> None:
    """Refuse a table folder that is the dataset directory itself or a folder above it (a link
    such as ``interactions -> .``): its "parts" would be the other tables' files."""
    target, home = folder.resolve(), directory.resolve()
    if target == home or home.is_relative_to(target):
        raise DataContractError(
            f"{table}: folder {folder} resolves to {target}, the dataset directory or a folder above it"
            f" (a link loop?); a table folder must hold only {table} part files"
        )


def part_files(folder: Path) -> list[Path]:
    """The table files in a folder, in name order (daily files sort by date)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in TABLE_SUFFIXES)


def read_table(path: Path, table: str) -> pl.DataFrame:
    """A canonical table from a ``.parquet`` or ``.csv`` file, or a folder of such parts."""
    if path.is_dir():
        parts = [read_table(part, table) for part in part_files(path)]
        return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
    return read_parquet_table(path, table) if path.suffix == ".parquet" else read_csv_table(path, table)


def scan_table(path: Path, table: str) -> pl.LazyFrame:
    """A canonical table as a lazy scan (out of core: the ingest stage streams it through its
    rules into storage, never whole in memory); its schema is read now, so an unreadable file
    fails here with the table and file named, as ``read_table`` would."""
    if path.is_dir():
        parts = [scan_table(part, table) for part in part_files(path)]
        return pl.concat(parts, how="diagonal_relaxed") if parts else pl.LazyFrame()
    if path.suffix == ".csv":
        check_utf8(path, table)
        scan, kind = pl.scan_csv(path, infer_schema_length=None), "CSV"
    else:
        scan, kind = pl.scan_parquet(path), "Parquet"
    try:
        schema = scan.collect_schema()
    except pl.exceptions.NoDataError:
        raise DataContractError(f"{table}: {path} is empty (not even a header row)") from None
    except _READ_ERRORS as err:
        raise DataContractError(f"{table}: {path} could not be read as {kind}: {err}") from None
    # the types inferred once from every row: a scan left to infer them reads the file again each pass
    return pl.scan_csv(path, schema=schema) if kind == "CSV" else scan


def require_file(directory: Path, filename: str, table: str) -> Path:
    """``directory / filename``, or a contract error naming the table that needs it."""
    path = directory / filename
    if not path.is_file():
        raise DataContractError(f"{table}: file {path} not found")
    return path


def check_utf8(path: Path, table: str, chunk_size: int = 1 << 20) -> None:
    """Fail early, with a clear message, on a binary or wrongly encoded CSV."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_size):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as err:
        raise DataContractError(
            f"{table}: {path} is not valid UTF-8 CSV (byte {err.start} of a chunk: {err.reason})"
        ) from None


def read_csv_table(path: Path, table: str) -> pl.DataFrame:
    """A canonical CSV; a header-only file is a 0-row table (the validate stage judges it)."""
    check_utf8(path, table)
    try:
        return pl.read_csv(path, infer_schema_length=None)
    except pl.exceptions.NoDataError:
        raise DataContractError(f"{table}: {path} is empty (not even a header row)") from None
    except _READ_ERRORS as err:
        raise DataContractError(f"{table}: {path} could not be read as CSV: {err}") from None


def read_parquet_table(path: Path, table: str) -> pl.DataFrame:
    """A canonical Parquet file; corruption is reported as a contract error."""
    try:
        return pl.read_parquet(path)
    except _READ_ERRORS as err:
        raise DataContractError(f"{table}: {path} is not a readable Parquet file: {err}") from None


def read_delimited(path: Path, table: str, columns: list[str], separator: str, encoding: str = "utf-8") -> pl.DataFrame:
    """A headerless, unquoted delimited text file as all-String columns (callers cast).

    Decoding happens in Python so legacy encodings (MovieLens is latin-1) work.
    """
    try:
        text = path.read_bytes().decode(encoding)
        return pl.read_csv(
            io.StringIO(text),
            separator=separator,
            has_header=False,
            new_columns=columns,
            quote_char=None,
            infer_schema=False,
        )
    except UnicodeDecodeError as err:
        raise DataContractError(f"{table}: {path} is not valid {encoding} text ({err.reason})") from None
    except _READ_ERRORS as err:
        raise DataContractError(f"{table}: {path} could not be read: {err}") from None


def read_ascii_matrix(path: Path, table: str, dtype: type = np.int64) -> np.ndarray:
    """A whitespace-separated numeric matrix (LF or CRLF lines), as a 2-D array."""
    try:
        matrix = np.loadtxt(path, dtype=dtype, ndmin=2)
    except (OSError, ValueError) as err:
        raise DataContractError(f"{table}: {path} is not a numeric matrix: {err}") from None
    return matrix


def read_lines(path: Path, table: str, encoding: str = "utf-8") -> list[str]:
    """Non-empty, stripped lines of a small text file (maps, genre lists)."""
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise DataContractError(f"{table}: {path} is not valid {encoding} text ({err.reason})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]
