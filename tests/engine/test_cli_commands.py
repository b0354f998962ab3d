"""The CLI around a run directory: status/report read files only, exit codes (0 / 2 / 1 / 130) with one-line
errors, --version, --home = STEERSWEEP_HOME, Parquet modes follow the umask, a corrupt vector file is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from test_report import _run_dir

from steersweep.engine import commands
from steersweep.engine.cli import main


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return _run_dir(tmp_path / "run", [("sft", "base", 30.0), ("dpo", "base", 12.0)], analysis=False)


def test_status_json_reads_files_only_without_ray_or_torch(run_dir):
    code = ("import sys; from steersweep.engine.cli import main; rc = main(['status', sys.argv[1], '--json']); "
            "assert 'ray' not in sys.modules and 'torch' not in sys.modules, 'status imported ray or torch'; "
            "sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    states = {u["unit"]: u["state"] for u in status["units"]}
    assert states["search/sft/optimism/from-base"] == "done"
    assert states["search/dpo/optimism/from-sft"] == "left"
    assert status["counts"]["done"] == 2
    best = {b["study"]: b for b in status["best"]}
    assert best["sft/optimism/from-base"]["found"] and best["sft/optimism/from-base"]["n"] == 8
    assert best["sft/optimism/from-base"]["coherence"] >= 80


def test_status_table_report_and_vectors_ls(run_dir, capsys):
    assert main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "2 done" in out and "best so far sft/optimism/from-base" in out
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").exists()
    assert main(["vectors", "ls", str(run_dir)]) == 0
    assert "no vectors yet" in capsys.readouterr().out


def test_not_a_run_dir_is_bad_input(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a run directory (no sweep.yaml)" in err


def test_a_corrupt_table_is_a_failure_exit_1_in_one_line(run_dir, capsys):
    (run_dir / "data" / "trials" / "broken.parquet").write_bytes(b"not parquet")
    assert main(["status", str(run_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("failed (") and "Traceback" not in err
    assert main(["--debug", "status", str(run_dir)]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_exits_130(run_dir, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "cmd_status", interrupted)
    assert main(["status", str(run_dir)]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_version_and_no_abbreviations(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("steersweep ")
    assert main(["status", "x", "--js"]) == 2
    assert "unrecognized arguments: --js" in capsys.readouterr().err


def test_every_option_has_help():
    from steersweep.engine.cli import build_parser

    parsers = [build_parser()]
    missing = []
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            if action.choices and isinstance(action.choices, dict):
                parsers.extend(action.choices.values())
            elif not action.help and action.dest != "help":
                missing.append(f"{parser.prog} {action.dest}")
    assert missing == []


def test_home_option_means_the_same_as_steersweep_home(tmp_path, monkeypatch):
    from steersweep.actors.toy import toy_home
    from steersweep.engine.config import parse_config
    from steersweep.engine.validation import toy_home as config_toy_home

    monkeypatch.delenv("STEERSWEEP_HOME", raising=False)
    assert main(["demo", "--print-config", "--home", str(tmp_path / "h")]) == 0
    assert os.environ["STEERSWEEP_HOME"] == str(tmp_path / "h")
    config = parse_config({"models": [{"name": "m", "path": "toy:llama-sft"}],
                           "traits": [{"name": "t", "datasets": {"instruction": "toy:instruction"}}],
                           "vectors": {"transfer": [{"source": "m", "targets": ["m"]}]}})
    assert toy_home() == config_toy_home(config) == tmp_path / "h" / "toy"


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_parquet_files_follow_the_umask(tmp_path, umask):
    from steersweep.actors.arrow_io import write_parquet_atomic

    old = os.umask(umask)
    try:
        path = write_parquet_atomic(pa.table({"a": [1]}), tmp_path / "t.parquet")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_corrupt_vector_file_is_named_with_the_fix(tmp_path):
    from steersweep.analysis import TraitVector
    from steersweep.engine.pipeline import RunDirCorruptError, _load_vector

    path = tmp_path / "v.safetensors"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(RunDirCorruptError) as info:
        _load_vector(TraitVector, path)
    assert str(path) in str(info.value) and "manifest.json" in str(info.value)
    assert "\n" not in str(info.value)
