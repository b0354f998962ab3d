"""Atomic Parquet writes and tolerant reads: one file per finished unit of work, never a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet_atomic(table: pa.Table, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp_name)
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; a teammate on shared storage must read it
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def read_parquet_dir(folder: str | os.PathLike[str], schema: pa.Schema | None = None) -> pa.Table | None:
    """Concatenate every finished ``*.parquet`` file under ``folder`` (temporary files are skipped).

    Returns None when the folder holds no finished file.
    """
    folder = Path(folder)
    if not folder.exists():
        return None
    files = sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("."))
    if not files:
        return None
    tables = [pq.read_table(p, schema=schema) for p in files]
    return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
