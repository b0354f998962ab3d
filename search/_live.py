"""The live view: each study's step table (Step | layer | ratio | coef | Trait | Coherence | Action) and a progress
bar of trials done / planned with rows/s and tokens/s, updated with rich while the search runs."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

MAX_ROWS = 12
"""Rows of each study's table shown live (the last ones; the full table is in the trials Parquet)."""


class LiveView:
    """A context manager; ``on_trial`` and ``on_call`` are the scheduler's callbacks."""

    def __init__(self, studies: dict[str, tuple[int, float]], console: Console | None = None,
                 enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.thresholds = {name: threshold for name, (_, threshold) in studies.items()}
        self.rows: dict[str, list[dict]] = {name: [] for name in studies}
        self.best: dict[str, tuple[float, int] | None] = {name: None for name in studies}
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=self.console)
        self.task = self.progress.add_task("trials", total=sum(n for n, _ in studies.values()), rate="")
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.enabled:
            self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)

    def table(self, name: str) -> Table:
        threshold = self.thresholds[name]
        table = Table(title=f"{name} (coherence >= {threshold:g}; ★ best feasible)", title_justify="left")
        for column in ("Step", "layer", "ratio", "coef", "Trait", "Coherence", "Action"):
            table.add_column(column, justify="right" if column != "Action" else "left")
        best = self.best[name]
        for row in self.rows[name][-MAX_ROWS:]:
            trait, coherence = row["trait_score"], row["coherence"]
            style = "green" if row["feasible"] else "red"
            action = row["source"] + ("  ★" if best is not None and best[1] == row["trial_number"] else "")
            table.add_row(str(row["trial_number"]), row["site"], f"{row['perturbation_ratio']:.3g}",
                          f"{row['coefficient']:.3g}", "—" if trait is None else f"{trait:.1f}",
                          "—" if coherence is None else f"[{style}]{coherence:.1f}[/]", action)
        return table

    def render(self) -> Group:
        return Group(*(self.table(name) for name in self.rows), self.progress)

    def on_trial(self, run: Any, row: dict) -> None:
        self.rows[run.name].append(row)
        if row["feasible"] and (self.best[run.name] is None or row["trait_score"] > self.best[run.name][0]):
            self.best[run.name] = (row["trait_score"], row["trial_number"])
        self.progress.update(self.task, advance=1 if row["state"] == "COMPLETE" else 0)
        if self._live is not None:
            self._live.update(self.render())

    def on_call(self, progress: Any) -> None:
        seconds = max(progress.seconds, 1e-9)
        self.progress.update(self.task, rate=f"{progress.rows / seconds:.1f} rows/s, "
                                             f"{progress.tokens / seconds:.0f} tokens/s ({progress.calls} calls)")
        if self._live is not None:
            self._live.update(self.render())
