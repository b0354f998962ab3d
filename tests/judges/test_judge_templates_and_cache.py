"""Templates ship versioned and are replaceable; the cache keys by content and round-trips through Parquet."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from steersweep.actors.judges import (
    JUDGMENTS_SUBDIR,
    CachedJudgment,
    JudgeCache,
    JudgeCacheError,
    JudgeTemplateError,
    JudgeTemplates,
    TraitDefinition,
    default_template,
    judgment_key,
    load_template,
)


def test_shipped_templates_are_versioned_and_render_every_field():
    templates = JudgeTemplates.default()
    assert templates.trait.version.startswith("trait_v2-")
    assert templates.coherence.version.startswith("coherence_v2-")
    assert templates.relevance.version.startswith("relevance_v2-")
    v1 = JudgeTemplates.default("v1")
    assert v1.trait.version.startswith("trait_v1-") and v1.coherence.version.startswith("coherence_v1-")
    text = templates.trait.render(question="Q?", response="A {not a field}", trait="optimism", definition="Hope.")
    assert "Q?" in text and "A {not a field}" in text and "optimism" in text and "Hope." in text
    assert "0 to 100" in text
    coherence = templates.coherence.render(question="Q?", response="A.")
    assert "Q?" in coherence and "A." in coherence and "coherent" in coherence


def test_a_replaced_template_gets_its_own_version(tmp_path):
    path = tmp_path / "my_trait.txt"
    path.write_text("Trait {trait}: {definition}\nQ: {question}\nA: {response}\nAnswer 0-100.")
    custom = JudgeTemplates.from_paths(trait=path)
    assert custom.trait.version.startswith("my_trait-")
    assert custom.trait.version != default_template("trait").version
    assert custom.coherence == default_template("coherence")
    # editing the file without renaming it changes the version, so old judgments are not reused
    path.write_text("Trait {trait} ({definition})\nQ: {question}\nA: {response}\nAnswer 0-100.")
    assert load_template("trait", path).version != custom.trait.version


def test_bad_templates_name_the_file_and_the_fix(tmp_path):
    missing_response = tmp_path / "t.txt"
    missing_response.write_text("Q: {question} {definition}")
    with pytest.raises(JudgeTemplateError, match=r"t\.txt.*\{response\}"):
        load_template("trait", missing_response)
    unknown = tmp_path / "u.txt"
    unknown.write_text("{question} {response} {reply}")
    with pytest.raises(JudgeTemplateError, match=r"u\.txt.*unknown placeholder.*reply"):
        load_template("coherence", unknown)
    with pytest.raises(JudgeTemplateError, match="cannot be read"):
        load_template("coherence", tmp_path / "nope.txt")
    with pytest.raises(JudgeTemplateError, match="metric"):
        default_template("helpfulness")


def test_judgment_key_changes_with_each_part():
    parts = ("gpt-4.1-mini", "trait_v1-abc", "trait:optimism:123", "Q", "A")
    key = judgment_key(*parts)
    assert key == judgment_key(*parts) and len(key) == 64
    for i in range(len(parts)):
        changed = list(parts)
        changed[i] = changed[i] + "x"
        assert judgment_key(*changed) != key
    # no separator trick: moving text between fields gives another key
    assert judgment_key("j", "v", "m", "ab", "c") != judgment_key("j", "v", "m", "a", "bc")


def test_trait_metric_id_follows_the_definition():
    first = TraitDefinition("optimism", "Hopeful.")
    assert first.metric_id == TraitDefinition("optimism", "Hopeful.\n").metric_id
    assert first.metric_id != TraitDefinition("optimism", "Expects the best.").metric_id


def test_cache_flushes_parquet_into_the_run_directory_and_loads_it_back(tmp_path):
    cache = JudgeCache.for_run_dir(tmp_path, flush_every=2)
    keys = [judgment_key("judge", "v", "coherence", f"Q{i}", "A") for i in range(3)]
    distribution = (("70", -0.5), ("The", -1.2))
    cache.put(keys[0], CachedJudgment(70.0, 0.6, distribution, 120, 1), judge="judge", template_version="v",
              metric="coherence")
    assert list((tmp_path / JUDGMENTS_SUBDIR).glob("*.parquet")) == []
    cache.put(keys[1], CachedJudgment(None, 0.1), judge="judge", template_version="v", metric="coherence")
    assert len(list((tmp_path / JUDGMENTS_SUBDIR).glob("*.parquet"))) == 1  # flush_every=2 reached
    cache.put(keys[2], CachedJudgment(12.5), judge="judge", template_version="v", metric="coherence")
    assert cache.pending == 1
    cache.flush()
    files = sorted((tmp_path / JUDGMENTS_SUBDIR).iterdir())
    assert len(files) == 2 and all(f.suffix == ".parquet" and not f.name.startswith(".") for f in files)
    assert sum(pq.read_metadata(f).num_rows for f in files) == 3

    reloaded = JudgeCache.for_run_dir(tmp_path)
    assert len(reloaded) == 3
    first = reloaded.get(keys[0])
    assert first == CachedJudgment(70.0, 0.6, distribution, 120, 1)
    assert reloaded.get(keys[1]).score is None
    assert reloaded.get(keys[2]).score == 12.5
    assert reloaded.get("0" * 64) is None
    assert (reloaded.hits, reloaded.misses) == (3, 1)


def test_unreadable_cache_file_is_a_clear_error(tmp_path):
    folder = tmp_path / JUDGMENTS_SUBDIR
    folder.mkdir(parents=True)
    (folder / "judgments-broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(JudgeCacheError, match="move the broken file"):
        JudgeCache.for_run_dir(tmp_path)
