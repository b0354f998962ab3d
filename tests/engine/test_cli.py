"""The installed `steersweep` console script answers and reports errors without a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

from steersweep.engine.cli import main


def test_console_script_is_installed():
    script = shutil.which("steersweep") or str(__import__("pathlib").Path(sys.executable).parent / "steersweep")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0
    for command in ("run", "resume", "status", "report", "validate", "demo", "vectors", "toy", "info"):
        assert command in result.stdout


def test_info_prints_the_model(tiny_model_dirs, capsys):
    assert main(["info", str(tiny_model_dirs["qwen2"]), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Qwen2ForCausalLM" in out and "num_layers" in out


def test_bad_model_path_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "could not be loaded" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_command_exits_2_with_one_line(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice: 'no-such-command'" in err
