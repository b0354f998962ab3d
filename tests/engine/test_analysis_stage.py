"""The analysis stage wired into the pipeline: a run directory of the toy family holds the drift rollouts, BAI,
validation, transfer, weight-diff and similarity tables, written by the analysis package's tasks, and the report
shows them; a rerun redoes nothing."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from steersweep.engine.analysis_stage import analysis_units, drift_units
from steersweep.engine.commands import demo_config_text
from steersweep.engine.config import parse_config
from steersweep.engine.status import read_tables


def _demo(**analysis) -> dict:
    data = yaml.safe_load(demo_config_text())
    data["analysis"] = {"enabled": True, **analysis}
    return data


def test_drift_units_use_each_models_own_vector_else_the_first_that_steers_it():
    config = parse_config(_demo())
    assert drift_units(config) == [("llama-base", "optimism", "llama-base"), ("llama-sft", "optimism", "llama-sft"),
                                   ("llama-dpo", "optimism", "llama-base")]
    assert analysis_units(config) == [
        "analysis/drifts/llama-base/optimism", "analysis/drifts/llama-sft/optimism",
        "analysis/drifts/llama-dpo/optimism", "analysis/transfer", "analysis/drifts", "analysis/weight_diff",
        "analysis/similarity"]
    assert drift_units(parse_config(_demo(analyses=["transfer"]))) == []
    assert analysis_units(parse_config(_demo(enabled=False))) == []


def test_drift_ratios_must_hold_zero_once():
    from steersweep.engine.config import ConfigError

    for ratios, word in (([0.2, 0.4], "lacks 0"), ([0, 0.4, 0.4], "repeats"), ([0, float("nan")], "non-finite")):
        with pytest.raises((ConfigError, ValueError), match=word):
            parse_config(_demo(drift_ratios=ratios))


def _small_config(tmp: Path, family) -> dict:
    data = _demo(drift_scenarios=4, drift_ratios=[0.0, -0.4, 0.4], drift_max_new_tokens=8)
    (tmp / "home").mkdir()
    (tmp / "home" / "toy").symlink_to(family.root.parent)
    data["toy"] = {"home": str(tmp / "home"), "seed": 0, "scale": family.manifest["scale"]}
    data["search"].update(trials=2, questions=2, max_new_tokens=8)
    data["traits"][0].update(max_scenarios=8, max_new_tokens=4)
    data["cluster"] = {"dashboard": False, "num_cpus": 2}
    return data


@pytest.mark.slow
def test_pipeline_run_dir_has_bai_validation_and_weight_diff_and_the_report_shows_them(tmp_path, small_family):
    import ray

    from steersweep.engine.pipeline import Pipeline

    family, _ = small_family
    config = parse_config(_small_config(tmp_path, family))
    run_dir = tmp_path / "run"
    started = time.perf_counter()
    try:
        result = Pipeline(config, run_dir).run_all()
        first_s = time.perf_counter() - started
        again = Pipeline(config, run_dir).run_all()
    finally:
        ray.shutdown()
    assert set(analysis_units(config)) <= set(result.ran)
    assert [u for u in again.ran if u != "report"] == [], again.ran  # every finished unit is skipped

    rollouts = read_tables(run_dir / "data" / "drift_rollouts").to_pylist()
    assert {(r["model"], r["vector_source"]) for r in rollouts} == {
        ("llama-base", "llama-base"), ("llama-sft", "llama-sft"), ("llama-dpo", "llama-base")}
    assert len(rollouts) == 3 * 4 * 3  # models x scenarios x ratios
    out = run_dir / "data" / "analysis"
    validation = pq.read_table(out / "validation.parquet").to_pylist()
    assert {r["model"] for r in validation} == {"llama-base", "llama-sft", "llama-dpo"}
    assert all(r["n"] <= 4 * 2 for r in validation)
    bai = pq.read_table(out / "bai.parquet").to_pylist()
    assert {r["label"] for r in bai} <= {"BROKEN", "WEAK", "FUNCTIONAL"} and len(bai) == 3
    matrix = pq.read_table(out / "transfer_matrix.parquet").to_pylist()
    assert {(r["vector_source"], r["target_model"]) for r in matrix} == {
        (s, t) for s in ("llama-base", "llama-sft") for t in ("llama-sft", "llama-dpo")}
    for pair in ("llama-base__llama-sft", "llama-sft__llama-dpo"):
        diff = pq.read_table(out / f"weight_diff_{pair}.parquet").to_pylist()
        assert diff and all(r["relative"] >= 0 for r in diff)
        assert (out / f"logit_lens_{pair}.parquet").exists() and (out / f"trait_alignment_{pair}.parquet").exists()
    assert pq.read_table(out / "similarity.parquet").num_rows > 0

    html = (run_dir / "report.html").read_text(encoding="utf-8")
    shown = re.findall(r"data-analysis='(\w[\w-]*)'", html)
    for table in ("bai", "validation", "validation_counts", "transfer_matrix", "weight_diff_llama-base__llama-sft",
                  "similarity"):
        assert table in shown, (table, shown)
    assert html.count("data-plot='bai'") == 1 and html.count("data-plot='weight_diff'") == 2
    print(f"pipeline with analysis on the small family: {first_s:.0f} s")


def test_stage_writes_the_analysis_packages_tables_from_a_run_dir_without_ray(tmp_path, tiny_model_dirs):
    """The stage's table units on a hand-filled run directory (trials, drift rollouts, two tiny checkpoints of one
    architecture, two vectors): every table comes from steersweep.analysis, in this process (Ray is not up)."""
    import numpy as np
    import pyarrow as pa
    import torch
    from safetensors.torch import load_file, save_file
    from test_report import _trials

    from steersweep.analysis import TraitVector
    from steersweep.engine.analysis_stage import run_table_analysis
    from steersweep.engine.pipeline import Pipeline

    base = tiny_model_dirs["llama"]
    sft = Path(shutil.copytree(base, tmp_path / "sft"))  # a fine-tune: every weight moved a little
    weights = load_file(sft / "model.safetensors")
    save_file({k: v + 0.01 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1)) for k, v in
               weights.items()}, sft / "model.safetensors", metadata={"format": "pt"})
    data = {"name": "stage", "models": [
        {"name": "base", "path": str(base), "variant": "base", "family": "tiny", "chat_template": False},
        {"name": "sft", "path": str(sft), "variant": "sft", "family": "tiny"}],
        "traits": [{"name": "optimism", "datasets": {"natural": "toy:natural", "instruction": "toy:instruction"}}],
        "vectors": {"transfer": [{"source": "base", "targets": ["sft"]}, {"source": "sft", "targets": ["sft"]}]}}
    pipeline = Pipeline(parse_config(data), tmp_path / "run")
    run = pipeline.run.create()
    assert run_table_analysis(pipeline, "drifts", use_ray=False) == {}  # no rollouts yet: nothing, no error
    for target, source, strength in (("sft", "base", 30.0), ("sft", "sft", 20.0)):
        run.write_table(_trials(target, source, strength), run.trials_dir / f"{target}__{source}.parquet")
    rng = np.random.default_rng(0)
    for source in ("base", "sft"):
        TraitVector(rng.normal(size=(4, 32)), (0, 1, 2, 3), {"trait": "optimism"}).save(
            run.vector_path(source, "optimism", "mean_diff", "residual", "response[:5]"))
    rows = [{"model": model, "trait": "optimism", "vector_source": model, "layer": 2, "scenario": s,
             "perturbation_ratio": r, "trait_score": 50 + 60 * r + (s % 3), "activation": 1.0 + r * (1 + s % 4)}
            for model in ("base", "sft") for s in range(8) for r in (0.0, -0.4, 0.4)]
    run.write_table(pa.Table.from_pylist(rows), run.drift_rollouts_path("base", "optimism"))

    written = {name: run_table_analysis(pipeline, name, use_ray=False)
               for name in ("transfer", "drifts", "weight_diff", "similarity")}
    assert written["transfer"] == {"transfer_by_layer": 6, "transfer_matrix": 2}
    assert {"bai", "validation", "validation_counts", "predictors"} <= set(written["drifts"])
    assert set(written["weight_diff"]) == {"weight_diff_base__sft", "logit_lens_base__sft", "trait_alignment_base__sft"}
    assert written["similarity"] == {"similarity": 4}
    out = run.analysis_dir
    diff = pq.read_table(out / "weight_diff_base__sft.parquet").to_pylist()
    assert len(diff) == 4 * 7 and all(r["relative"] > 0 for r in diff)  # two seeds differ in every tensor
    alignment = pq.read_table(out / "trait_alignment_base__sft.parquet").to_pylist()
    assert {r["vector"] for r in alignment} == {"optimism/base", "optimism/sft"}
    validation = pq.read_table(out / "validation.parquet").to_pylist()
    assert [r["n"] for r in validation] == [16, 16] and all(r["validated"] for r in validation)
    expected = TraitVector.load(run.vector_path("base", "optimism", "mean_diff", "residual", "response[:5]")).cosine(
        TraitVector.load(run.vector_path("sft", "optimism", "mean_diff", "residual", "response[:5]")))
    got = pq.read_table(out / "similarity.parquet").to_pylist()
    assert {r["layer"]: r["cosine"] for r in got} == pytest.approx(expected)
