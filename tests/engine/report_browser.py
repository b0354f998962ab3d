"""Headless Chromium (Debian's ``chromium`` package) for the report tests: screenshot, DOM after scripts, console.

Runs with the network off: in a fresh network namespace (``unshare -n``) when the machine allows it, else with
every host name mapped to nothing and a dead proxy, so any request the page tried would fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000")
_CONSOLE = re.compile(r':CONSOLE(?::\d+|\(\d+\))\] "(?P<message>.*)", source: (?P<source>\S+)')


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _network_off_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0:
        return [unshare, "-n"]
    return []


@dataclass
class PageRun:
    dom: str
    console: list[tuple[str, str]]
    """(message, source) of every console line the page's own scripts (file://) produced."""
    stderr: str
    network_off: str


def open_page(page: Path, profile: Path, screenshot: Path | None = None, timeout: int = 240) -> PageRun:
    """Load ``page`` offline; dump the DOM after its scripts ran (and a screenshot when asked)."""
    binary = chromium()
    assert binary, "chromium is not installed (apt-get install -y chromium; .ci/run does it)"
    prefix = _network_off_prefix()
    base = [*prefix, binary, *FLAGS, f"--user-data-dir={profile}"]
    url = page.resolve().as_uri()
    result = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    if screenshot is not None:
        shot = subprocess.run([*base, "--window-size=1400,2400", f"--screenshot={screenshot}",
                               "--hide-scrollbars", url], capture_output=True, text=True, timeout=timeout,
                              check=False)
        assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    console = [(m["message"], m["source"]) for m in _CONSOLE.finditer(result.stderr)
               if m["source"].startswith("file://")]
    return PageRun(result.stdout, console, result.stderr, "network namespace" if prefix else "dead resolver")
