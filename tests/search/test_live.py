"""The live view renders each study's step table (Step | layer | ratio | coef | Trait | Coherence | Action, the star
on the best feasible trial) and a progress bar with rows/s and tokens/s."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

from rich.console import Console

from steersweep.search import LiveView, Progress


def test_live_view_renders_step_table_and_rates():
    console = Console(file=io.StringIO(), width=140, force_terminal=False)
    view = LiveView({"s": (4, 80.0)}, console, enabled=True)
    run = SimpleNamespace(name="s")
    with view:
        for number, (trait, coherence) in enumerate([(60.0, 90.0), (88.0, 85.0), (95.0, 40.0)]):
            view.on_trial(run, {"trial_number": number, "site": "L2", "perturbation_ratio": 0.6 * 1.3**number,
                                "coefficient": 2.0 * 1.3**number, "trait_score": trait, "coherence": coherence,
                                "feasible": coherence >= 80.0, "source": "walk", "state": "COMPLETE"})
        progress = Progress(planned=4, done=3, rows=60, tokens=600, calls=2, started=time.perf_counter() - 2.0)
        view.on_call(progress)
    text = console.file.getvalue()
    for word in ("Step", "layer", "ratio", "coef", "Trait", "Coherence", "Action", "rows/s", "tokens/s", "3/4"):
        assert word in text
    starred = [line for line in text.splitlines() if "★" in line and "│" in line]
    assert len(starred) >= 1 and all("88.0" in line for line in starred)
