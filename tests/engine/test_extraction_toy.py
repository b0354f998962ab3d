"""On the toy family: natural elicitation on llama-base and instruction elicitation on llama-sft (slow: builds the
family on first use, ~3 min on 2 CPU cores). The numbers are printed by benchmarks/toy_extraction.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "toy_extraction.py"


def _script():
    spec = importlib.util.spec_from_file_location("toy_extraction", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_natural_and_instruction_vectors_on_the_toy_family(tmp_path, capsys):
    result = _script().run(tmp_path, "response[:5]", 8)
    for outcome in result["outcomes"].values():
        assert outcome.label_polarity.agrees is True
        assert outcome.generated_rollouts == 192 and not outcome.refused
    for (model, method), (correct, n_layers, mean_acc, _, _) in result["summary"].items():
        assert n_layers == 4 and correct == 4, (model, method)
        assert mean_acc >= 0.95, (model, method, mean_acc)
    # the research notes' quick diagnostic: cosine > 0.5 means natural elicitation captures the same concept
    for method in ("mean_diff", "probe"):
        assert min(result["cosines"][method].values()) > 0.5, result["cosines"][method]
    printed = capsys.readouterr().out
    assert "cosine(natural llama-base vector, instruction llama-sft vector)" in printed
    assert len(result["rows"]) == 2 * 3 * 4  # models x methods x layers
