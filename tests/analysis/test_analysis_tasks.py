"""Drift rollouts through a real (tiny) model and judge, then run_analyses as Ray tasks over a run directory."""

from __future__ import annotations

import numpy as np
import pandas
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tiny_models import build_tiny_model as tiny_model
from tiny_models import build_tiny_tokenizer as tiny_tokenizer
from tiny_models import save

from steersweep.actors import CaptureRequest, ModelSpec, ModelWorker
from steersweep.actors.arrow_io import write_parquet_atomic
from steersweep.actors.judges import RuleJudge, TraitDefinition
from steersweep.analysis import (
    TraitVector,
    run_analyses,
    scenario_drifts,
    transfer_matrix,
    validation_table,
)
from steersweep.engine.drifts import drift_rollouts

TRAIT = TraitDefinition("happiness", "Says happy things.")
QUESTIONS = ("the cat is happy", "a dog runs here", "the sun is bright today", "rain and night", "we sing a song")


def _score(question: str, response: str) -> tuple[float, float]:
    words = response.split()
    return 100.0 * sum(w[0] in "abcdefghijklm" for w in words) / max(1, len(words)), 90.0


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory):
    tokenizer = tiny_tokenizer()
    folder = save(tiny_model("llama", len(tokenizer), seed=11), tokenizer, tmp_path_factory.mktemp("drift") / "m")
    worker = ModelWorker(ModelSpec(str(folder)))
    rng = np.random.default_rng(0)
    vector = TraitVector(rng.normal(size=(4, 32)).astype(np.float32), (0, 1, 2, 3), {"trait": TRAIT.name})
    table = drift_rollouts(worker, "tiny", vector, 2, QUESTIONS, RuleJudge(_score), TRAIT, ratios=(0.0, -2.0, 2.0),
                           max_new_tokens=6)
    return worker, vector, table


def test_drift_rollouts_measure_the_unsteered_replay_projection(rollouts):
    worker, vector, table = rollouts
    rows = table.to_pylist()
    assert len(rows) == len(QUESTIONS) * 3
    assert {r["perturbation_ratio"] for r in rows} == {0.0, -2.0, 2.0}
    assert all(r["coefficient"] == 0.0 for r in rows if r["perturbation_ratio"] == 0.0)
    unsteered = worker.capture(CaptureRequest(prompts=QUESTIONS, generate=True, max_new_tokens=6, layers=(2,)))
    for q, reference in enumerate(unsteered.response_token_ids):
        row = next(r for r in rows if r["scenario"] == q and r["perturbation_ratio"] == 0.0)
        assert tuple(row["response_token_ids"]) == reference  # ratio 0 is the plain greedy response
    row = next(r for r in rows if r["perturbation_ratio"] == 2.0 and r["response_tokens"] > 0)
    replayed = worker.capture(CaptureRequest(prompts=(row["question"],), layers=(2,), positions=("response[:]",),
                                             responses=(tuple(row["response_token_ids"]),)))
    unit = vector.at(2) / np.linalg.norm(vector.at(2))
    assert row["activation"] == pytest.approx(float(replayed.get(2, "residual", "response[:]")[0] @ unit), rel=1e-5)
    assert row["trait_score"] == pytest.approx(_score(row["question"], row["response"])[0])
    with pytest.raises(ValueError, match=r"lacks 0.0"):
        drift_rollouts(worker, "tiny", vector, 2, QUESTIONS, RuleJudge(_score), TRAIT, ratios=(1.0,))


def test_run_analyses_as_ray_tasks_writes_every_table(rollouts, tmp_path, ray_local):
    _, _, table = rollouts
    other = pa.Table.from_pylist([dict(r, model="tiny-copy", vector_source="tiny-copy",
                                       activation=None if r["activation"] is None else -r["activation"])
                                  for r in table.to_pylist()], schema=table.schema)
    write_parquet_atomic(table, tmp_path / "data" / "drift_rollouts" / "tiny.parquet")
    write_parquet_atomic(other, tmp_path / "data" / "drift_rollouts" / "tiny-copy.parquet")
    trials = pa.Table.from_pylist([dict(target_model="tiny", trait=TRAIT.name, vector_source="tiny", layer=2,
                                        perturbation_ratio=r, coefficient=r, trait_score=10.0 + 10 * r,
                                        coherence=90.0 - 20 * r, baseline_trait_score=10.0, state="COMPLETE",
                                        coherence_threshold=70.0) for r in (0.5, 1.0, 2.0)])
    write_parquet_atomic(trials, tmp_path / "data" / "trials" / "tiny.parquet")
    written = run_analyses(tmp_path, use_ray=True)
    out = tmp_path / "data" / "analysis"
    assert set(written) == {"transfer", "drifts"}
    for name in ("transfer_by_layer", "transfer_matrix", "drifts", "bai", "validation", "validation_counts",
                 "activation_transfer", "validation_steered", "bai_steered", "predictors"):
        assert (out / f"{name}.parquet").exists(), name
    both = pa.concat_tables([table, other])
    expected = validation_table(scenario_drifts(both)).to_pandas()
    pandas.testing.assert_frame_equal(pq.read_table(out / "validation.parquet").to_pandas(), expected)
    assert pq.read_table(out / "transfer_matrix.parquet").to_pylist() == transfer_matrix(trials)[1].to_pylist()
    flips = pq.read_table(out / "activation_transfer.parquet").to_pylist()
    assert {(r["model_a"], r["model_b"]) for r in flips} == {("tiny", "tiny-copy"), ("tiny-copy", "tiny")}
    with pytest.raises(ValueError, match="unknown"):
        run_analyses(tmp_path, names=["nope"])
