"""``RUN_DIR/report.html``: one self-contained page (plotly.js inlined, no network) drawn from the run's Parquet
tables, so a half-finished run reports what is done.

Sections (each a ``<section data-section=NAME>``): ``summary`` (units and the best config per study with n and
SE), one ``study`` per finished study (trait and coherence over perturbation ratio per layer with the sweet spot and
the breakdown marked, a layer x ratio heatmap, the step log), ``transfer`` (matrix), ``analysis`` (every table in
``data/analysis``: transfer, validation, BAI with a plot, weight diffs with a plot per family pair, logit lens,
vector similarity with a plot) and ``config`` (the frozen sweep.yaml).
"""

from __future__ import annotations

import html
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .status import read_tables, run_status

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9cfdb}nav{padding:8px 28px;background:#e9ecf1;font-size:14px}
nav a{margin-right:14px;color:#2b5fad;text-decoration:none}
section{background:#fff;margin:18px 28px;padding:16px 22px;border-radius:8px;box-shadow:0 1px 3px #0002}
h2{margin-top:0;font-size:18px}h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border-bottom:1px solid #e3e6eb;padding:4px 10px;
text-align:right}th{background:#f0f2f5}td:first-child,th:first-child{text-align:left}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:10px}.plot{min-width:0}
pre{background:#f0f2f5;padding:10px;font-size:12px;overflow:auto}.muted{color:#6b7385}
.ok{color:#18794e}.bad{color:#b42318}
"""


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float | np.floating):
        return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.2f}"
    if isinstance(value, list | np.ndarray):
        return ", ".join(_fmt(v) for v in value)
    return html.escape(str(value))


def _table(frame, columns: list[str] | None = None, limit: int = 200) -> str:
    if frame is None or len(frame) == 0:
        return "<p class='muted'>no rows yet</p>"
    columns = columns or list(frame.columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(row[c])}</td>" for c in columns) + "</tr>"
                   for _, row in frame.head(limit).iterrows())
    more = f"<p class='muted'>{len(frame) - limit} more rows in the Parquet file</p>" if len(frame) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


class _Figures:
    """Collects plotly figures as divs (plotly.js is inlined once in the page head)."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, fig, name: str) -> str:
        import plotly.io as pio

        self.count += 1
        fig.update_layout(margin=dict(l=55, r=20, t=50, b=45), height=420, template="plotly_white",
                          title=dict(font=dict(size=14)), legend=dict(font=dict(size=11)))
        inner = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"plot-{self.count}",
                            config={"displayModeBar": False, "responsive": True})
        return f"<div class='plot' data-plot='{html.escape(name)}'>{inner}</div>"


def _study_section(study: str, trials, figures: _Figures) -> str:
    import plotly.graph_objects as go

    done = trials[trials["state"] == "COMPLETE"].sort_values("perturbation_ratio")
    threshold = float(trials["coherence_threshold"].iloc[0])
    baseline_trait = float(trials["baseline_trait_score"].iloc[0])
    curves = go.Figure()
    for layer, group in done.groupby("layer"):
        curves.add_trace(go.Scatter(x=group["perturbation_ratio"], y=group["trait_score"], mode="lines+markers",
                                    name=f"trait L{layer}", error_y=dict(array=group["trait_score_se"].fillna(0))))
        curves.add_trace(go.Scatter(x=group["perturbation_ratio"], y=group["coherence"], mode="lines+markers",
                                    name=f"coherence L{layer}", line=dict(dash="dot")))
    curves.add_hline(y=threshold, line=dict(color="#b42318", dash="dash"), annotation_text="coherence threshold")
    curves.add_hline(y=baseline_trait, line=dict(color="#6b7385", dash="dot"), annotation_text="unsteered trait")
    feasible = done[done["feasible"]]
    notes = []
    if len(feasible):
        best = feasible.sort_values(["trait_score", "coherence", "perturbation_ratio"],
                                    ascending=[False, False, True]).iloc[0]
        curves.add_trace(go.Scatter(x=[best["perturbation_ratio"]], y=[best["trait_score"]], mode="markers",
                                    marker=dict(symbol="star", size=18, color="#f5a524"), name="sweet spot"))
        notes.append(f"sweet spot: layer {int(best['layer'])}, ratio {best['perturbation_ratio']:.2f}, trait "
                     f"{best['trait_score']:.1f} ± {_fmt(best['trait_score_se'])} (SE, n={int(best['n'])}), "
                     f"coherence {best['coherence']:.1f}")
    broken = done[~done["feasible"]]
    if len(broken):
        breakdown = float(broken["perturbation_ratio"].min())
        curves.add_vline(x=breakdown, line=dict(color="#b42318"), annotation_text="breakdown")
        notes.append(f"breakdown: the lowest ratio with coherence below {threshold:g} (any layer) is {breakdown:.2f}")
    curves.update_layout(title="trait (solid) and coherence (dotted) over perturbation ratio, per layer",
                         xaxis_title="perturbation ratio (|coef·v| / |h|)", yaxis_title="score (0-100)")
    bins = np.linspace(done["perturbation_ratio"].min(), done["perturbation_ratio"].max() + 1e-9, 9) \
        if len(done) else np.array([0, 1])
    done = done.assign(ratio_bin=np.digitize(done["perturbation_ratio"], bins) - 1)
    layers = sorted(done["layer"].unique())
    z = [[None] * (len(bins) - 1) for _ in layers]
    for (layer, b), group in done.groupby(["layer", "ratio_bin"]):
        z[layers.index(layer)][min(int(b), len(bins) - 2)] = float(group["trait_score"].mean())
    centers = [f"{(bins[i] + bins[i + 1]) / 2:.2f}" for i in range(len(bins) - 1)]
    heat = go.Figure(go.Heatmap(z=z, x=centers, y=[f"L{layer}" for layer in layers], colorscale="Viridis",
                                colorbar=dict(title="trait")))
    heat.update_layout(title="trait score: layer x ratio (mean of the trials in a cell)",
                       xaxis_title="perturbation ratio (bin centre)", yaxis_title="layer")
    wanted = ["step", "trial_number", "site", "source", "layer", "perturbation_ratio", "coefficient", "trait_score",
              "trait_score_se", "coherence", "coherence_se", "feasible", "n"]
    steps = trials.sort_values("trial_number")[[c for c in wanted if c in trials.columns]]
    anchor = study.replace("/", "-")
    return (f"<section id='{html.escape(anchor)}' data-section='study' data-study='{html.escape(study)}'>"
            f"<h2>study {html.escape(study)}</h2><p>{'<br>'.join(html.escape(n) for n in notes)}</p>"
            f"<div class='plots'>{figures.div(curves, 'curves')}{figures.div(heat, 'heatmap')}</div>"
            f"<h3>step log ({len(trials)} trials; scores are means over n questions, SE in ±)</h3>"
            f"{_table(steps)}</section>")


def _transfer_section(trials, figures: _Figures) -> str:
    import plotly.graph_objects as go

    from .search_stage import best_trials

    best = [b for b in best_trials(trials) if b.get("found")]
    if not best:
        return ("<section id='transfer' data-section='transfer'><h2>transfer matrix</h2>"
                "<p class='muted'>no finished study yet</p></section>")
    targets = sorted({b["target_model"] for b in best})
    sources = sorted({b["vector_source"] for b in best})
    z = [[None] * len(sources) for _ in targets]
    text = [[""] * len(sources) for _ in targets]
    for b in best:
        i, j = targets.index(b["target_model"]), sources.index(b["vector_source"])
        z[i][j] = b["trait_score"] - b["baseline_trait_score"]
        text[i][j] = f"{b['trait_score']:.1f} (+{z[i][j]:.1f}) n={b['n']}"
    fig = go.Figure(go.Heatmap(z=z, x=[f"vector of {s}" for s in sources], y=targets, text=text,
                               texttemplate="%{text}", colorscale="Blues", colorbar=dict(title="gain")))
    fig.update_layout(title="best coherent trait score (gain over unsteered) per target x vector source",
                      xaxis_title="vector source", yaxis_title="steered model")
    return ("<section id='transfer' data-section='transfer'><h2>transfer matrix</h2>"
            f"<div class='plots'>{figures.div(fig, 'transfer')}</div></section>")


_KNOWN = [  # (table name or prefix, heading) in the order the report shows them; other tables follow
    ("transfer_matrix", "transfer matrix (best trait delta at coherence >= threshold, per source -> target)"),
    ("validation_counts", "validation: models passing r > threshold per trait"),
    ("validation", "validation table: Pearson r(activation drift, behavioral drift) with Fisher-z CI, per model x "
                   "trait"),
    ("bai", "BAI: |mean behavioral drift at the top - bottom activation quantile| (research units; < 0.3 BROKEN, "
            "< 0.7 WEAK)"),
    ("predictors", "which diagnostic predicts r (correlation across model x trait rows)"),
    ("activation_transfer", "cross-model activation transfer (A's projections predicting B's behavioral drift)"),
    ("weight_diff_", "weight diff per layer x component (||dW||_F, relative = ||dW||_F / ||W||_F)"),
    ("logit_lens_", "logit lens of the residual-facing weight diff (top tokens both directions)"),
    ("trait_alignment_", "cosine of the weight-diff direction with each trait vector per layer"),
    ("similarity", "cosine between the sources' trait vectors per layer"),
]


def _analysis_kind(stem: str) -> int:
    for index, (name, _) in enumerate(_KNOWN):
        if stem == name or (name.endswith("_") and stem.startswith(name)):
            return index
    return len(_KNOWN)


def _analysis_plot(stem: str, frame, figures: _Figures) -> str:
    import plotly.graph_objects as go

    if stem == "similarity":
        fig = go.Figure()
        for (a, b), group in frame.groupby(["source_a", "source_b"]):
            fig.add_trace(go.Scatter(x=group["layer"], y=group["cosine"], mode="lines+markers", name=f"{a} vs {b}"))
        fig.update_layout(title="cosine between vectors per layer", xaxis_title="layer", yaxis_title="cosine",
                          yaxis_range=[-1, 1])
        return figures.div(fig, "similarity")
    if stem.startswith("weight_diff_"):
        fig = go.Figure()
        for component, group in frame.groupby("component", sort=False):
            fig.add_trace(go.Bar(x=group["layer"], y=group["relative"], name=str(component)))
        fig.update_layout(title=f"{stem.removeprefix('weight_diff_').replace('__', ' → ')}: relative weight change "
                                "per layer (|ΔW| / |W|)", xaxis_title="layer", yaxis_title="relative Frobenius norm",
                          barmode="group")
        return figures.div(fig, "weight_diff")
    if stem == "bai":
        fig = go.Figure()
        for trait, group in frame.groupby("trait"):
            fig.add_trace(go.Bar(x=[f"{m} L{layer}" for m, layer in zip(group["model"], group["layer"], strict=True)],
                                 y=group["bai"], name=str(trait), text=group["label"]))
        fig.add_hline(y=0.3, line=dict(color="#b42318", dash="dash"), annotation_text="BROKEN < 0.3")
        fig.add_hline(y=0.7, line=dict(color="#18794e", dash="dash"), annotation_text="FUNCTIONAL >= 0.7")
        fig.update_layout(title="behavioral alignment index per model", xaxis_title="model (layer)",
                          yaxis_title="BAI (research units)")
        return figures.div(fig, "bai")
    return ""


def _analysis_section(root: Path, figures: _Figures) -> str:
    import pyarrow.parquet as pq

    folder = root / "data" / "analysis"
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(".")) if folder.exists() else []
    files.sort(key=lambda p: (_analysis_kind(p.stem), p.stem))
    parts = ["<section id='analysis' data-section='analysis'><h2>analysis</h2>"]
    if not files:
        parts.append("<p class='muted'>no analysis table yet</p>")
    for path in files:
        frame = pq.read_table(path).to_pandas()
        kind = _analysis_kind(path.stem)
        heading = f"{_KNOWN[kind][1]}: " if kind < len(_KNOWN) else ""
        parts.append(f"<div data-analysis='{html.escape(path.stem)}'><h3>{html.escape(heading + path.stem)} "
                     f"<span class='muted'>({len(frame)} rows, data/analysis/{html.escape(path.name)})</span></h3>")
        plot = _analysis_plot(path.stem, frame, figures) if len(frame) else ""
        if plot:
            parts.append(f"<div class='plots'>{plot}</div>")
        parts.append(_table(frame, [c for c in frame.columns if c != "response_token_ids"]) + "</div>")
    parts.append("</section>")
    return "".join(parts)


def build_report(root: str | os.PathLike[str]) -> str:
    """The report's HTML text (see the module docstring)."""
    import plotly.offline

    root = Path(root)
    status = run_status(root)
    trials_table = read_tables(root / "data" / "trials")
    trials = None if trials_table is None else trials_table.to_pandas()
    figures = _Figures()
    body = []
    units_now = [u for u in status["units"] if u["unit"] != "report"]  # the report unit is this page being written
    counts = {state: sum(u["state"] == state for u in units_now) for state in ("done", "running", "left")}
    best_rows = [b for b in status["best"] if b.get("found")]
    import pandas as pd

    best_frame = pd.DataFrame(best_rows) if best_rows else None
    columns = ["study", "layer", "perturbation_ratio", "coefficient", "trait_score", "trait_score_se", "coherence",
               "coherence_se", "n", "baseline_trait_score", "n_trials"]
    units = pd.DataFrame(status["units"])
    body.append(
        "<section id='summary' data-section='summary'><h2>summary</h2>"
        f"<p>units: <b class='ok'>{counts['done']} done</b>, {counts['running']} running or cut, {counts['left']} left"
        "</p><h3>best coherent config per study (scores 0-100, means over n questions, ± SE)</h3>"
        f"{_table(best_frame, columns)}<details><summary>units</summary>{_table(units)}</details></section>")
    studies = [] if trials is None else list(dict.fromkeys(trials["study"]))
    for study in studies:
        body.append(_study_section(study, trials[trials["study"] == study], figures))
    body.append(_transfer_section(trials, figures))
    body.append(_analysis_section(root, figures))
    config_text = (root / "sweep.yaml").read_text(encoding="utf-8")
    body.append(f"<section id='config' data-section='config'><h2>config (sweep.yaml, frozen)</h2>"
                f"<pre>{html.escape(config_text)}</pre></section>")
    nav = "".join(f"<a href='#{s.replace('/', '-')}'>{html.escape(s)}</a>" for s in
                  ["summary", *studies, "transfer", "analysis", "config"])
    title = html.escape(f"steersweep report: {status['name']}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style><script>{plotly.offline.get_plotlyjs()}</script></head><body>"
            f"<header><h1>{title}</h1><p>{html.escape(str(root))} · written "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} · {figures.count} plots</p></header><nav>{nav}</nav>"
            f"{''.join(body)}</body></html>")


def write_report(root: str | os.PathLike[str]) -> Path:
    """Write ``RUN_DIR/report.html`` atomically (readable by the group, as the umask allows) and return its path."""
    root = Path(root)
    path = root / "report.html"
    tmp = path.with_name(f".report.html.{os.getpid()}.tmp")
    tmp.write_text(build_report(root), encoding="utf-8")
    os.replace(tmp, path)
    return path
