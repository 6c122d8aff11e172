"""Start-up of the command lines, as whole processes, beside the bare interpreter.

``almanac next`` loads no operator module (tests/unit/test_cli_imports.py): what it costs
beyond ``python -c pass`` is pydantic, PyYAML and the engine. The plugin also loads the
Kubernetes client's login modules (almanac.lean_client) and aiohttp, not the client's
generated models. Run with ``make bench``; the README quotes the medians.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE = REPO / "manifests" / "samples" / "business-days.yaml"

COMMANDS = {
    "python -c pass (the limit)": [sys.executable, "-c", "pass"],
    "almanac next -n 1": [
        sys.executable, "-m", "almanac", "next", "-f", str(SAMPLE), "-n", "1",
        "--after", "2027-04-10T00:00:00Z",
    ],
    "kubectl-almanac --help": [sys.executable, "-m", "almanac.cli.plugin", "--help"],
    "almanac run --help": [sys.executable, "-m", "almanac", "run", "--help"],
}  # fmt: skip


@pytest.mark.benchmark(group="start-up")
@pytest.mark.parametrize("command", list(COMMANDS), ids=list(COMMANDS))
def test_start_up(benchmark: Callable[..., object], command: str) -> None:
    argv = COMMANDS[command]

    def run() -> None:
        subprocess.run(argv, check=True, capture_output=True, cwd=REPO)

    benchmark.pedantic(run, rounds=10, warmup_rounds=1)  # type: ignore[attr-defined]
