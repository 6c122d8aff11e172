"""The command lines that need no operator do not load it.

``almanac next`` is a preview that needs no cluster, and ``kubectl almanac`` is run by
people at a prompt: neither may import kopf or the operator's packages (``almanac.controller``,
``almanac.notifications``). ``almanac run`` loads them when it runs.
Each check runs in a fresh interpreter, so what an earlier test imported cannot hide it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE = REPO / "manifests" / "samples" / "business-days.yaml"

OPERATOR_ONLY = ("kopf", "prometheus_client", "almanac.controller", "almanac.notifications")
CLIENT_MODELS = ("kubernetes_asyncio.client.models.", "kubernetes_asyncio.client.api.")
API_MODELS = ("almanac.api.models", "pydantic")


def modules_after(code: str) -> tuple[set[str], str]:
    """The modules loaded by a fresh interpreter after ``code``, and what it printed."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    *printed, modules = result.stdout.splitlines()
    return set(json.loads(modules)), "\n".join(printed)


def loaded_operator_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == "kopf" or m.startswith(OPERATOR_ONLY))


def test_almanac_next_loads_no_operator_module() -> None:
    modules, printed = modules_after(
        "from almanac.cli.main import main\n"
        f"main(['next', '-f', {str(SAMPLE)!r}, '-n', '2', '--after', '2027-04-10T00:00:00Z'])"
    )
    assert printed.splitlines() == ["2027-04-11T21:00:00Z", "2027-04-11T21:01:00Z"]
    assert loaded_operator_modules(modules) == []


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["next", "--help"], ["run", "--help"]],
    ids=" ".join,
)
def test_almanac_help_loads_no_operator_module(argv: list[str]) -> None:
    modules, printed = modules_after(
        f"from almanac.cli.main import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    )
    assert "usage: almanac" in printed
    assert loaded_operator_modules(modules) == []


def test_the_plugin_loads_no_operator_module() -> None:
    modules, _ = modules_after(
        "from almanac.cli.plugin import build_parser\n"
        "build_parser().parse_args(['next', 'j', '-n', 'finance'])"
    )
    assert "almanac.cli.plugin" in modules
    assert loaded_operator_modules(modules) == []


@pytest.mark.parametrize("verb", ["runs", "describe", "rerun", "run"])
def test_the_plugins_cluster_verbs_load_neither_the_clients_models_nor_ours(verb: str) -> None:
    """Each ``kubectl almanac`` command starts a fresh interpreter: the client's generated
    models (almanac.lean_client) and, for the verbs that work out no fires, our pydantic
    models are a third of its start. The command runs up to reading the kubeconfig."""
    modules, printed = modules_after(
        "from almanac.cli.plugin import main\n"
        f"print(main([{verb!r}, 'x', '--kubeconfig', '/nonexistent/kubeconfig']))"
    )
    assert printed == "1"  # no cluster: the verb got as far as logging in
    assert sorted(m for m in modules if m.startswith(CLIENT_MODELS)) == []
    assert sorted(m for m in modules if m.startswith(API_MODELS)) == []


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["--help"], "0"), (["runs", "--help"], "0"), (["runs"], "2"), (["nosuchverb"], "2")],
    ids=" ".join,
)
def test_the_plugins_help_and_usage_errors_load_no_client(argv: list[str], code: str) -> None:
    """``kubectl almanac --help`` and a mistyped command line answer before asyncio, the
    client and aiohttp are imported (0.30 s of a 0.31 s start before)."""
    modules, printed = modules_after(f"from almanac.cli.plugin import main\nprint(main({argv!r}))")
    assert printed.splitlines()[-1] == code
    loaded = sorted(m for m in modules if m.split(".")[0] in ("asyncio", "aiohttp"))
    assert loaded + sorted(m for m in modules if m.startswith("kubernetes_asyncio")) == []
    assert "almanac.kube" not in modules


def test_almanac_run_is_what_loads_the_operator() -> None:
    """The check above can fail: the runner does bring kopf in."""
    modules, _ = modules_after("import almanac.controller.runner")
    assert "kopf" in loaded_operator_modules(modules)


def test_the_log_formats_offered_are_the_runners() -> None:
    from almanac.cli.main import LOG_FORMATS
    from almanac.controller.runner import LOG_FORMATS as RUNNER_FORMATS

    assert sorted(LOG_FORMATS) == sorted(RUNNER_FORMATS)
