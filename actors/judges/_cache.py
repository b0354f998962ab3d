"""Content-addressed judge cache: one row per judgment, Parquet files in RUN_DIR/data/judgments/, loaded on start."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ..arrow_io import read_parquet_dir, write_parquet_atomic
from ..paths import JUDGMENTS

logger = logging.getLogger(__name__)

JUDGMENTS_SUBDIR = JUDGMENTS  # from RunPaths: the one home of the run-directory layout

JUDGMENT_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("judge", pa.string()),
        ("template_version", pa.string()),
        ("metric", pa.string()),
        ("score", pa.float64()),
        ("integer_mass", pa.float64()),
        ("top_tokens", pa.list_(pa.string())),
        ("top_logprobs", pa.list_(pa.float64())),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("created_at", pa.float64()),
        # added in judge v2: join judgments to responses by sha256 of the texts; where the judge ran; why no score
        ("question_hash", pa.string()),
        ("response_hash", pa.string()),
        ("endpoint", pa.string()),
        ("error", pa.string()),
    ]
)


class JudgeCacheError(RuntimeError):
    """The judge cache folder holds a file that cannot be read; the message names the folder and the fix."""


@dataclass(frozen=True)
class CachedJudgment:
    """What one judgment left behind: the score and, for logprob judges, the distribution it came from.

    Keeping ``top_logprobs`` lets a later run re-aggregate with another ``min_mass`` without paying again.
    """

    score: float | None
    integer_mass: float | None = None
    top_logprobs: tuple[tuple[str, float], ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: why there is no score: the endpoint rejected this one item (HTTP 400/413/422 and its message)
    error: str | None = None


def text_hash(text: str) -> str:
    """sha256 of the UTF-8 text, hex: the ``question_hash`` / ``response_hash`` of a judgment row.

    Example:
        >>> text_hash("Hi?")[:12]
        'faf7b8ae4a53'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def judgment_key(
    judge: str, template_version: str, metric: str, question: str, response: str, endpoint: str = ""
) -> str:
    """sha256 over (judge model id, template version, metric, question, response, endpoint), hex.

    The parts are JSON-encoded as one list, so no choice of separator can make two different tuples collide. The
    endpoint is part of the key because two servers can serve different weights under one model name.

    Example:
        >>> len(judgment_key("gpt-4.1-mini", "coherence_v2-abc", "coherence", "Hi?", "Hello.", "http://h:8000/v1"))
        64
    """
    payload = json.dumps([judge, template_version, metric, question, response, endpoint], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgeCache:
    """Judgments by content key, kept in memory and flushed to Parquet (one atomic file per flushed batch).

    Several judges (and several processes) may share one folder: every flush writes a new uniquely named file,
    and loading concatenates them all.

    Example:
        >>> cache = JudgeCache(None)  # in memory only
        >>> key = judgment_key("judge", "v1", "coherence", "Q", "A")
        >>> cache.put(key, CachedJudgment(score=80.0), judge="judge", template_version="v1", metric="coherence")
        >>> cache.get(key).score, cache.hits
        (80.0, 1)

    Args:
        folder: where the Parquet files live (``RUN_DIR/data/judgments``); None keeps everything in memory.
        flush_every: write a file once this many new judgments are pending (a flush also happens at the end of
            every ``Judge.ajudge`` call, on Ctrl-C and before a ``JudgeUnavailableError`` is raised).
        flush_interval_s: also write once the oldest pending judgment is this old, so a killed process loses at
            most the last few seconds of judgments.
    """

    def __init__(
        self, folder: str | os.PathLike[str] | None, flush_every: int = 256, flush_interval_s: float = 10.0
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every: {flush_every} must be >= 1")
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s: {flush_interval_s} must be > 0 seconds")
        self.folder = Path(folder) if folder is not None else None
        self.flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        self._oldest_pending_at: float | None = None
        self.hits = 0
        self.misses = 0
        self.files_written = 0
        self._entries: dict[str, CachedJudgment] = {}
        self._pending: list[dict] = []
        self._lock = threading.Lock()
        if self.folder is not None:
            self._load()

    @classmethod
    def for_run_dir(
        cls, run_dir: str | os.PathLike[str], flush_every: int = 256, flush_interval_s: float = 10.0
    ) -> JudgeCache:
        """The cache of one run directory: ``RUN_DIR/data/judgments/``."""
        return cls(Path(run_dir) / JUDGMENTS_SUBDIR, flush_every=flush_every, flush_interval_s=flush_interval_s)

    def _load(self) -> None:
        assert self.folder is not None
        try:
            table = read_parquet_dir(self.folder)
        except (pa.ArrowInvalid, OSError) as error:
            raise JudgeCacheError(
                f"judge cache {self.folder}: a Parquet file cannot be read ({error}); move the broken file out of "
                "the folder (only the judgments in it are lost) and resume"
            ) from error
        if table is None:
            return
        rows = table.to_pylist()
        for row in rows:
            tokens = row.get("top_tokens") or []
            logprobs = row.get("top_logprobs") or []
            known = self._entries.get(row["key"])
            if known is not None and (known.error is None or row.get("error") is not None):
                continue  # the first score wins; a score wins over a rejection re-asked later
            self._entries[row["key"]] = CachedJudgment(
                score=row["score"],
                integer_mass=row.get("integer_mass"),
                top_logprobs=tuple(zip(tokens, logprobs, strict=True)),
                prompt_tokens=row.get("prompt_tokens") or 0,
                completion_tokens=row.get("completion_tokens") or 0,
                error=row.get("error"),
            )
        logger.info("judge cache %s: loaded %d judgments", self.folder, len(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def pending(self) -> int:
        """Judgments held in memory that are not yet on disk."""
        return len(self._pending)

    def get(self, key: str) -> CachedJudgment | None:
        """The cached judgment for ``key`` (counted as a hit), or None (counted as a miss)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
            else:
                self.hits += 1
            return entry

    def put(
        self,
        key: str,
        judgment: CachedJudgment,
        *,
        judge: str,
        template_version: str,
        metric: str,
        question: str | None = None,
        response: str | None = None,
        endpoint: str = "",
    ) -> None:
        """Remember one judgment; writes a Parquet file when ``flush_every`` judgments are pending or the oldest
        pending one is ``flush_interval_s`` old. A rejected judgment (``error`` set) replaces an earlier one."""
        with self._lock:
            previous = self._entries.get(key)
            if previous is not None and previous.error is None:
                return
            self._entries[key] = judgment
            if self.folder is None:
                return
            self._pending.append(
                {
                    "key": key,
                    "judge": judge,
                    "template_version": template_version,
                    "metric": metric,
                    "score": judgment.score,
                    "integer_mass": judgment.integer_mass,
                    "top_tokens": [token for token, _ in judgment.top_logprobs],
                    "top_logprobs": [logprob for _, logprob in judgment.top_logprobs],
                    "prompt_tokens": judgment.prompt_tokens,
                    "completion_tokens": judgment.completion_tokens,
                    "created_at": time.time(),
                    "question_hash": text_hash(question) if question is not None else None,
                    "response_hash": text_hash(response) if response is not None else None,
                    "endpoint": endpoint,
                    "error": judgment.error,
                }
            )
            now = time.monotonic()
            if self._oldest_pending_at is None:
                self._oldest_pending_at = now
            should_flush = (
                len(self._pending) >= self.flush_every or now - self._oldest_pending_at >= self.flush_interval_s
            )
        if should_flush:
            self.flush()

    def flush(self) -> Path | None:
        """Write the pending judgments as one new Parquet file (atomic); returns its path, or None if none."""
        with self._lock:
            if self.folder is None or not self._pending:
                return None
            rows, self._pending = self._pending, []
            oldest, self._oldest_pending_at = self._oldest_pending_at, None
            path = self.folder / f"judgments-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
            try:
                write_parquet_atomic(pa.Table.from_pylist(rows, schema=JUDGMENT_SCHEMA), path)
            except BaseException:
                self._pending = rows + self._pending
                self._oldest_pending_at = oldest
                raise
            self.files_written += 1
        logger.debug("judge cache: wrote %d judgments to %s", len(rows), path)
        return path


def read_judgments(run_dir: str | os.PathLike[str]) -> pa.Table:
    """Every judgment stored under ``RUN_DIR/data/judgments`` as one table (empty, with the schema, if none)."""
    table = read_parquet_dir(Path(run_dir) / JUDGMENTS_SUBDIR)
    return table if table is not None else JUDGMENT_SCHEMA.empty_table()
