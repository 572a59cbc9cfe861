"""Running ``sdhub`` in a child process for attacks that could hang: a hang fails the test, not the suite."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_sdhub(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``sdhub ARGS`` in a child process with a hard timeout: a hang fails the test instead of the suite."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        return subprocess.run([sys.executable, "-c", "from hub.cli import main; main()", *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"sdhub {' '.join(map(str, args))} hung (> {timeout} s)")
