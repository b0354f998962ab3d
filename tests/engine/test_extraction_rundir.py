"""RunDir: the DESIGN.md layout, position slugs, atomic upserts and the frozen config."""

from __future__ import annotations

import pyarrow as pa
import pytest

from steersweep.engine import ConfigChangedError, RunDir, position_slug


@pytest.mark.parametrize(
    ("position", "slug"),
    [("response[:5]", "response_0-5"), ("response[:]", "response_0-end"), ("prompt[-1]", "prompt_m1"),
     ("response[-3:]", "response_m3-end"), ("all[:]", "all_0-end"), ("response[2:10]", "response_2-10")],
)
def test_position_slugs_are_file_names(position, slug):
    assert position_slug(position) == slug


def test_paths_follow_the_design_layout(tmp_path):
    run = RunDir(tmp_path / "run").create()
    assert run.vector_path("llama-sft", "optimism", "probe", "residual", "response[:5]") == (
        tmp_path / "run/vectors/llama-sft/optimism/probe/residual/response_0-5.safetensors")
    assert run.activation_path("llama-sft", "optimism", "attn_out", "prompt[-1]") == (
        tmp_path / "run/data/activations/model=llama-sft/trait=optimism/attn_out@prompt_m1.parquet")
    assert run.vectors_table == tmp_path / "run/data/vectors.parquet"
    for folder in ("vectors", "data/activations", "data/trials", "data/responses", "data/judgments", "data/analysis"):
        assert (tmp_path / "run" / folder).is_dir()
    with pytest.raises(ValueError, match=r"model: '\.\./x' cannot name a folder"):
        run.vector_path("../x", "t", "m", "residual", "prompt[-1]")


def test_upsert_replaces_rows_with_the_same_key_and_keeps_the_rest(tmp_path):
    run = RunDir(tmp_path).create()
    path = run.data_dir / "table.parquet"
    run.upsert_table(path, pa.table({"k": ["a", "b"], "layer": [0, 0], "v": [1.0, 2.0]}), ["k", "layer"])
    merged = run.upsert_table(path, pa.table({"k": ["b", "c"], "layer": [0, 0], "v": [20.0, 3.0]}), ["k", "layer"])
    assert sorted(zip(merged.column("k").to_pylist(), merged.column("v").to_pylist(), strict=True)) == [
        ("a", 1.0), ("b", 20.0), ("c", 3.0)]
    assert run.read_table(path).num_rows == 3
    assert not list(run.data_dir.glob(".*"))  # no temporary file left behind


def test_config_is_frozen_at_first_start(tmp_path):
    run = RunDir(tmp_path)
    run.freeze_config("models: [a]\n")
    run.freeze_config("models: [a]\n")  # same config: resume is fine
    with pytest.raises(ConfigChangedError, match="different config"):
        run.freeze_config("models: [b]\n")
