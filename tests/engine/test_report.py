"""Must-show 2: the report opens in headless Chromium with the network off, draws every section and plot, logs
no console error; a half-finished run reports what is done. The run directory here holds real Parquet tables in
the COMMON.md layout, filled from a smooth response model (the full pipeline's report is checked in the slow demo
test)."""

from __future__ import annotations

import math
import re
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from report_browser import chromium, open_page

from steersweep.analysis import drift_task
from steersweep.engine.config import parse_config, study_name
from steersweep.engine.manifest import Manifest, freeze_config
from steersweep.engine.report import write_report
from steersweep.search import TRIALS_SCHEMA

CONFIG = {
    "name": "report-test",
    "models": [{"name": "base", "path": "toy:llama-base", "variant": "base", "chat_template": False},
               {"name": "sft", "path": "toy:llama-sft", "variant": "sft"},
               {"name": "dpo", "path": "toy:llama-dpo", "variant": "dpo"}],
    "traits": [{"name": "optimism", "datasets": {"natural": "toy:natural", "instruction": "toy:instruction"}}],
    "vectors": {"transfer": [{"source": "base", "targets": ["sft", "dpo"]}, {"source": "sft", "targets": ["dpo"]}]},
    "search": {"layers": "all", "trials": 12},
    "judge": {"kind": "rule"},
}


def _trials(target: str, source: str, strength: float) -> pa.Table:
    rows = []
    for number in range(12):
        layer, ratio = 1 + number % 3, 0.15 * number + 0.05
        trait = 50 + strength * math.sin(min(ratio, 1.2) * 1.3) * (1.0 if layer == 2 else 0.7)
        coherence = 98 - 70 * max(0.0, ratio - 0.9)
        rows.append({
            "study": study_name(target, "optimism", source), "target_model": target, "trait": "optimism",
            "vector_source": source, "vector_method": "mean_diff", "sampler": "constrained_tpe",
            "trial_number": number, "state": "COMPLETE", "layers": [layer], "layer": layer,
            "perturbation_ratio": ratio, "coefficient": ratio * 9.0, "activation_norm": 9.0, "vector_norm": 1.0,
            "trait_score": trait, "coherence": coherence, "trait_score_se": 2.5, "coherence_se": 1.5, "n": 8,
            "baseline_trait_score": 50.0, "baseline_coherence": 98.0, "feasible": coherence >= 80,
            "coherence_threshold": 80.0, "site": f"L{layer}", "sign": 1, "coefficients": [ratio * 9.0],
            "source": "prior" if number < 3 else "tpe", "retry_of": None, "seconds": 0.5,
        })
    return pa.Table.from_pylist(rows, schema=TRIALS_SCHEMA)


def _run_dir(root: Path, studies: list[tuple[str, str, float]], analysis: bool) -> Path:
    config = parse_config(CONFIG)
    freeze_config(root, config.to_yaml())
    manifest = Manifest(root)
    for target, source, strength in studies:
        table = _trials(target, source, strength)
        slug = f"{target}__optimism__from-{source}"
        (root / "data" / "trials").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "data" / "trials" / f"{slug}.parquet")
        manifest.finish(f"search/{study_name(target, 'optimism', source)}", 0.0)
    if analysis:
        (root / "data" / "analysis").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist([
            {"trait": "optimism", "source_a": "base", "source_b": "sft", "layer": layer, "cosine": 0.5 + 0.1 * layer,
             "method": "mean_diff"} for layer in range(4)]), root / "data" / "analysis" / "similarity.parquet")
        pq.write_table(pa.Table.from_pylist([
            {"layer": layer, "component": component, "diff_norm": 1.0 + layer, "relative": 0.1 * (layer + 1)}
            for layer in range(4) for component in ("o_proj", "down_proj")]),
            root / "data" / "analysis" / "weight_diff_base__sft.parquet")
        # BAI and validation through the analysis package, from drift rollouts whose behavior follows activation
        rollouts = [{"model": model, "trait": "optimism", "vector_source": model, "layer": 2, "scenario": scenario,
                     "perturbation_ratio": ratio, "trait_score": 50 + 60 * ratio + (scenario % 3) * slope,
                     "activation": 1.0 + ratio * (1 + scenario % 4)}
                    for model, slope in (("sft", 1.0), ("dpo", 9.0)) for scenario in range(8)
                    for ratio in (0.0, -0.4, 0.4)]
        (root / "data" / "drift_rollouts").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rollouts), root / "data" / "drift_rollouts" / "rollouts.parquet")
        drift_task(root)
    return root


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _png_is_not_blank(path: Path) -> bool:
    """Decode the PNG's first IDAT stream enough to see more than one colour (no PIL here)."""
    data = path.read_bytes()
    chunks, offset = [], 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        kind = data[offset + 4:offset + 8]
        if kind == b"IDAT":
            chunks.append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    return len(set(raw[: 400_000])) > 20


def test_half_finished_run_reports_what_is_done(tmp_path):
    root = _run_dir(tmp_path / "run", [("sft", "base", 30.0)], analysis=False)
    text = write_report(root).read_text(encoding="utf-8")
    assert text.count("data-section='study'") == 1
    assert "no analysis table yet" in text
    assert "1 done" in text and "left" in text
    assert (root / "report.html").stat().st_mode & 0o044  # readable by group/others as the umask allows
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']https?://""", text), "external resource"


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run installs it)")
def test_report_opens_offline_in_headless_chromium(tmp_path):
    studies = [("sft", "base", 30.0), ("dpo", "base", 12.0), ("dpo", "sft", 18.0)]
    root = _run_dir(tmp_path / "run", studies, analysis=True)
    report = write_report(root)
    page = open_page(report, tmp_path / "profile", screenshot=tmp_path / "report.png")
    assert page.console == [], page.console
    sections = re.findall(r'data-section="(\w+)"', page.dom)
    assert sections == ["summary", "study", "study", "study", "transfer", "analysis", "config"]
    expected = ["curves", "heatmap"] * 3 + ["transfer", "bai", "weight_diff", "similarity"]
    divs = re.findall(r'data-plot="(\w+)"><div[^>]*>\s*<div id="(plot-\d+)" class="([^"]*)"', page.dom)
    assert [d[0] for d in divs] == expected
    assert all("js-plotly-plot" in d[2] for d in divs), "a plot was not drawn by plotly.js"
    assert page.dom.count('class="main-svg"') >= 2 * len(expected)
    width, height = _png_size(tmp_path / "report.png")
    assert (width, height) == (1400, 2400)
    assert _png_is_not_blank(tmp_path / "report.png")
    assert "sweet spot" in page.dom and "breakdown" in page.dom
    analyses = re.findall(r'data-analysis="(\w+)"', page.dom)
    assert analyses[:4] == ["validation_counts", "validation", "bai", "predictors"], analyses
    assert {"weight_diff_base__sft", "similarity", "drifts"} <= set(analyses)
    # the console check sees a page's errors (so an empty list above means something)
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>console.error('boom'); notDefined();</script></body></html>")
    messages = [m for m, _ in open_page(broken, tmp_path / "profile2").console]
    assert "boom" in messages and any("notDefined" in m for m in messages)
