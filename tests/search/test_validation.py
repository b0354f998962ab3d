"""Must-show 5: bad search input is rejected before any generation, naming the field and the fix."""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import QUESTIONS, LoggingWorker, read_log

from steersweep.actors import ModelSpec
from steersweep.search import SearchConfigError, SearchSpace, search


@pytest.fixture(scope="module")
def logged(tiny_llama, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "calls.log"
    return LoggingWorker(ModelSpec(tiny_llama, device="cpu"), str(log)), log


@pytest.mark.parametrize(("space", "vector", "match"), [
    (lambda: SearchSpace(layers=(1, 7)), None, r"space.layers: layer 7 is out of range for a model with 4 layers; "
                                               r"use layers 0-3"),
    (lambda: SearchSpace(depth=(0.5, 0.2)), None, r"space.depth: .* must be fractions"),
    (lambda: SearchSpace(), lambda v: np.where(np.arange(32) == 3, np.nan, v), r"vector: layer 0 holds NaN or inf "
                                                                                r"values; re-extract it"),
    (lambda: SearchSpace(), lambda v: v[:, :16], r"vector: layer 0 has hidden size 16, but target model 'target' "
                                                  r"has hidden size 32; use a vector extracted from a model with the "
                                                  r"same hidden size"),
    (lambda: SearchSpace(windows=("L[2-5]",)), None, r"space.windows: layer 4 is out of range"),
])
def test_rejected_before_any_generation(logged, tiny_vector, tmp_path, space, vector, match):
    worker, log = logged
    before = len(read_log(log))
    bad_vector = tiny_vector if vector is None else vector(tiny_vector.copy())
    with pytest.raises(SearchConfigError, match=match):
        search(worker, bad_vector, QUESTIONS, space(), sampler="random", run_dir=tmp_path / "run", n_trials=2,
               live=False)
    assert len(read_log(log)) == before and worker.calls == 0
    assert not (tmp_path / "run").exists()  # nothing written either


@pytest.mark.parametrize(("ratio", "match"), [((1.0, 1.0), "space.ratio"), ((0.5, 0.1), "space.ratio"),
                                              ((-0.5, 1.0), "space.ratio: .* 0 < low < high"),
                                              ((0.0, 1.0), "use sign='-' or 'both'")])
def test_empty_or_negative_ratio_range(ratio, match):
    with pytest.raises(SearchConfigError, match=match):
        SearchSpace(ratio=ratio)


def test_other_bad_settings_name_their_field():
    with pytest.raises(SearchConfigError, match="give only one of them"):
        SearchSpace(layers=(1,), depth=(0.2, 0.4))
    with pytest.raises(SearchConfigError, match=r"space\.sign"):
        SearchSpace(sign="up")
    with pytest.raises(SearchConfigError, match="sampler: 'bayes' is not a sampler"):
        from steersweep.search import make_sampler

        make_sampler("bayes")
    with pytest.raises(SearchConfigError, match="L\\[first-last\\]"):
        SearchSpace(windows=("L[5-3]",))


def test_sites_windows_and_ensembles_split_the_coefficient():
    sites = SearchSpace(layers=(1, 2), windows=("L[0-3]",), ensembles=("L1+L3",)).sites(4)
    assert [s.label for s in sites] == ["L1", "L2", "L[0-3]", "L1+L3"]
    assert sites[2].weights == (0.25,) * 4 and sites[3].weights == (0.5, 0.5)
    assert [s.layer for s in SearchSpace(depth=(0.3, 0.7)).sites(32)] == list(range(10, 22))
