"""Atomic Parquet writes: a write that fails half-way leaves the previous file readable and no temporary file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steersweep.actors.arrow_io import read_parquet_dir, write_parquet_atomic


class _Crash(RuntimeError):
    pass


def _crash_mid_write(monkeypatch):
    """Make ``pq.write_table`` write a first row group to its target and then raise, like a killed writer."""
    real_writer = pq.ParquetWriter

    def crashing_write_table(table, where, **kwargs):
        writer = real_writer(where, table.schema)
        writer.write_table(table.slice(0, 1))
        raise _Crash("the writer died half-way")

    monkeypatch.setattr(pq, "write_table", crashing_write_table)


def test_interrupted_write_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "trials" / "part-0.parquet"
    first = pa.table({"trial_number": [0, 1, 2], "trait_score": [10.0, 20.0, 30.0]})
    assert write_parquet_atomic(first, target) == target
    _crash_mid_write(monkeypatch)
    with pytest.raises(_Crash):
        write_parquet_atomic(pa.table({"trial_number": [7, 8], "trait_score": [1.0, 2.0]}), target)
    monkeypatch.undo()
    assert sorted(p.name for p in target.parent.iterdir()) == ["part-0.parquet"]
    assert pq.read_table(target).equals(first)


def test_interrupted_first_write_leaves_nothing(tmp_path, monkeypatch):
    _crash_mid_write(monkeypatch)
    with pytest.raises(_Crash):
        write_parquet_atomic(pa.table({"a": [1, 2]}), tmp_path / "out.parquet")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    assert read_parquet_dir(tmp_path) is None


def test_a_successful_write_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "t.parquet"
    write_parquet_atomic(pa.table({"a": [1]}), target)
    second = pa.table({"a": [5, 6]})
    write_parquet_atomic(second, str(target))
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
    assert pq.read_table(target).equals(second)


def test_read_parquet_dir_concatenates_finished_files_and_skips_temp_files(tmp_path):
    assert read_parquet_dir(tmp_path / "missing") is None
    assert read_parquet_dir(tmp_path) is None
    write_parquet_atomic(pa.table({"a": [1, 2]}), tmp_path / "a.parquet")
    write_parquet_atomic(pa.table({"a": [3], "b": ["x"]}), tmp_path / "nested" / "b.parquet")
    pq.write_table(pa.table({"a": [99]}), tmp_path / ".c.parquet.123.tmp.parquet")  # a writer's leftover
    table = read_parquet_dir(tmp_path)
    assert table.column("a").to_pylist() == [1, 2, 3]
    assert table.column("b").to_pylist() == [None, None, "x"]
    single = read_parquet_dir(tmp_path / "nested", schema=pa.schema([("a", pa.int64()), ("b", pa.string())]))
    assert single.to_pylist() == [{"a": 3, "b": "x"}]


def test_the_temporary_file_is_hidden_next_to_the_target_and_creates_missing_folders(tmp_path, monkeypatch):
    """Readers skip dot files and only read *.parquet, so the half-written file must be a dot file not ending in
    .parquet, in the target's folder (a rename across file systems would not be atomic)."""
    real_write_table = pq.write_table
    seen = []

    def recording_write_table(table, where, **kwargs):
        seen.append(Path(where))
        assert read_parquet_dir(target.parent) is None, "a reader must not see the file being written"
        return real_write_table(table, where, **kwargs)

    target = tmp_path / "a" / "b" / "c.parquet"
    monkeypatch.setattr(pq, "write_table", recording_write_table)
    write_parquet_atomic(pa.table({"a": [1]}), target)
    (temp,) = seen
    assert temp.parent == target.parent
    assert temp.name.startswith(".c.parquet.") and temp.name.endswith(".tmp")
    assert not temp.exists() and pq.read_table(target).to_pylist() == [{"a": 1}]


def test_read_parquet_dir_applies_the_given_schema_to_every_file(tmp_path):
    write_parquet_atomic(pa.table({"a": [1, 2]}), tmp_path / "a.parquet")
    schema = pa.schema([("a", pa.int32()), ("b", pa.string())])
    table = read_parquet_dir(tmp_path, schema=schema)
    assert table.schema == schema and table.to_pylist() == [{"a": 1, "b": None}, {"a": 2, "b": None}]
