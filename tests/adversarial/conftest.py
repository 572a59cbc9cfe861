"""The adversarial suite: hostile files, misbehaving servers and broken plugins, each asserting one clear outcome.

Every test here is one attack. At the end of the session a line ``adversarial: N tried / N clean /
N failed`` is printed (tried = attacks run, clean = handled as the test demands, failed = not), so
CI output says at a glance how sdhub held up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
_outcomes: dict[str, str] = {}  # nodeid -> "clean" | "failed"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each adversarial test counts once: a failure in setup, call or teardown makes it failed; skips don't count."""
    if not Path(str(report.fspath)).resolve().is_relative_to(_HERE):
        return
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.when == "call" and report.passed:
        _outcomes.setdefault(report.nodeid, "clean")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _outcomes:
        clean = sum(1 for v in _outcomes.values() if v == "clean")
        failed = len(_outcomes) - clean
        terminalreporter.write_line(f"adversarial: {len(_outcomes)} tried / {clean} clean / {failed} failed")
