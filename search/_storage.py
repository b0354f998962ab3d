"""Optuna storage for the studies of a run: SQLite in the run directory by default, a journal file, or a database URL.

``optuna-dashboard sqlite:///RUN_DIR/study.db`` (or the journal file's path) shows the studies while they run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from steersweep.actors.paths import RunPaths

from ._space import SearchConfigError


def resolve_storage(storage: str | Any | None, run_paths: RunPaths | None) -> Any:
    """The Optuna storage for ``storage``:

    - None or ``"sqlite"``: ``sqlite:///RUN_DIR/study.db`` (the default);
    - ``"journal"``: a journal file ``RUN_DIR/study.journal`` (safe on network file systems, several drivers);
    - ``"memory"``: in memory (benchmarks; nothing survives the process);
    - a URL (``postgresql://...``, ``mysql://...``, ``sqlite:///...``): used as it is;
    - a path ending in ``.db`` / ``.sqlite`` (SQLite) or ``.journal`` / ``.log`` (journal file);
    - an Optuna storage object: used as it is.
    """
    if storage is not None and not isinstance(storage, str | Path):
        return storage
    text = "sqlite" if storage is None else str(storage)
    if text == "memory":
        return optuna.storages.InMemoryStorage()
    if "://" in text:
        return text
    if text in ("sqlite", "journal"):
        if run_paths is None:
            raise SearchConfigError(f"storage: {text!r} lives in the run directory; give run_dir, or a URL")
        run_paths.root.mkdir(parents=True, exist_ok=True)
        if text == "sqlite":
            return f"sqlite:///{run_paths.study_db}"
        return _journal(run_paths.study_journal)
    path = Path(text)
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if path.suffix in (".journal", ".log"):
        return _journal(path)
    raise SearchConfigError(f"storage: cannot read {text!r}; use 'sqlite' (default), 'journal', 'memory', a "
                            "postgresql:// URL or a path ending in .db or .journal")


def _journal(path: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))
