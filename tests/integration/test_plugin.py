"""``kubectl almanac`` against the real control plane and the real operator.

The plugin runs as a user runs it: a separate process (``python -m almanac.cli.plugin``, and
once through kubectl's own plugin lookup), with the test's kubeconfig and namespace.
Assertions are on its stdout, stderr and exit code, and on what kubectl shows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from tests.integration.conftest import Operator
from tests.integration.objects import (
    calendar,
    first_rerun_of_a_run_now,
    scheduled_job,
    scheduled_job_run,
    service,
)
from tests.integration.test_operator import finished_run, reasons, run_now, runs_of
from tests.kube import Kubectl, wait_until

REPO = Path(__file__).resolve().parent.parent.parent
PIPELINE = [service("extract"), service("transform", mandatory=True, exit_code=1), service("load")]


def plugin(
    k: Kubectl, *args: str, kubeconfig: Path | None = None, via_kubectl: bool = False
) -> subprocess.CompletedProcess[str]:
    """``kubectl almanac --kubeconfig ... -n <test namespace> ARGS``."""
    options = ["--kubeconfig", str(kubeconfig or k.kubeconfig), "-n", str(k.namespace)]
    if via_kubectl:
        # kubectl finds kubectl-almanac on PATH, next to this interpreter.
        command = ["kubectl", "almanac", *options, *args]
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "PATH": path}
    else:
        command = [sys.executable, "-m", "almanac.cli.plugin", *options, *args]
        env = dict(os.environ)
    return subprocess.run(command, capture_output=True, text=True, timeout=90, cwd=REPO, env=env)


def columns(line: str) -> list[str]:
    """The cells of a table line (cells are three or more spaces apart)."""
    return re.split(r"\s{3,}", line.strip())


def test_run_starts_a_manual_run_and_runs_lists_the_runs_newest_first(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(scheduled_job("adhoc", services=[service("extract"), service("load")]))

    result = plugin(k, "run", "adhoc")
    assert result.returncode == 0, result.stderr
    [run] = runs_of(k, "adhoc")
    first = run["metadata"]["name"]
    assert result.stdout == f"run {first} created from scheduledjob adhoc\n"
    assert run["spec"]["trigger"] == "RunNow"
    finished_run(k, first)
    second = finished_run(k, run_now(k, "adhoc")["metadata"]["name"])

    table = plugin(k, "runs", "adhoc")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert columns(lines[0]) == [
        "NAME",
        "SCHEDULED",
        "TRIGGER",
        "PHASE",
        "PARENT",
        "SERVICES",
        "AGE",
    ]
    rows = [columns(line) for line in lines[1:]]
    assert [row[0] for row in rows] == [second["metadata"]["name"], first]
    assert rows[0][1:6] == [
        second["spec"]["scheduledTime"],
        "RunNow",
        "Succeeded",
        "<none>",
        "extract:Succeeded,load:Succeeded",
    ]
    assert re.fullmatch(r"\d+s", rows[0][6])


def test_rerun_of_a_failed_run_creates_the_child_and_a_second_rerun_is_refused(
    k: Kubectl, start_operator: Callable[..., Operator]
) -> None:
    start_operator(ALMANAC_RERUN_DELAY_SECONDS="5")
    # Keep the failed parent when its child fails too (the default keeps one failed run).
    k.apply(scheduled_job("nightly", services=PIPELINE, failedRunsHistoryLimit=5))
    parent = finished_run(k, run_now(k, "nightly")["metadata"]["name"])
    name = parent["metadata"]["name"]
    assert parent["status"]["phase"] == "Failed"

    result = plugin(k, "rerun", name, "--failed-only")
    assert result.returncode == 0, result.stderr
    child_name = first_rerun_of_a_run_now(name)
    child = k.get("sjr", child_name)
    assert child is not None
    assert child["spec"]["parentRun"] == name
    assert [s["name"] for s in child["spec"]["services"]] == ["transform", "load"]
    starts = child["spec"]["scheduledTime"]
    assert re.fullmatch(
        rf"run {child_name} created from {name}, starts at {starts} \(in \d+s\)\n", result.stdout
    ), result.stdout

    again = plugin(k, "rerun", name)
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr == (
        f"Error: rerun of {name} refused: run {name} was already rerun as {child_name}; "
        f"rerun {child_name} to try again\n"
    )
    assert [r["metadata"]["name"] for r in runs_of(k, "nightly")].count(child_name) == 1


def test_rerun_without_an_operator_leaves_the_annotation_and_says_how_to_watch(
    k: Kubectl, crds: Kubectl
) -> None:
    k.apply(scheduled_job("idle"))
    # A run as the operator would have left it; no operator is running for this namespace.
    run = scheduled_job_run(
        "idle-29000000",
        "idle",
        scheduled_time="2025-03-01T00:00:00Z",
        labels={"almanac.dev/scheduled-job": "idle"},
    )
    k.apply(run)
    result = plugin(k, "rerun", "idle-29000000", "--wait", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "annotation almanac.dev/rerun=now is set on scheduledjobrun idle-29000000; no rerun "
        "appeared within 1s (is the operator running?). The operator creates the rerun when "
        f"it sees the annotation; watch with: kubectl -n {k.namespace} get sjr "
        "-l almanac.dev/scheduled-job=idle -w\n"
    )
    annotations = (k.get("sjr", "idle-29000000") or {})["metadata"]["annotations"]
    assert annotations["almanac.dev/rerun"] == "now"


def test_describe_shows_the_services_the_events_and_the_commands_to_act(
    k: Kubectl, operator: Operator
) -> None:
    k.apply(scheduled_job("pipeline", services=PIPELINE))
    run = finished_run(k, run_now(k, "pipeline")["metadata"]["name"])
    name, ns = run["metadata"]["name"], k.namespace
    # The run's end is told on its job; describe shows it in the run's story.
    wait_until("the run's last Event", lambda: "RunFailed" in reasons(k, "pipeline"))

    result = plugin(k, "describe", name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:9] == [
        f"Name:         {name}",
        f"Namespace:    {ns}",
        "ScheduledJob: pipeline",
        lines[3],
        f"Date:         {run['spec']['scheduledTime'][:10]} (UTC)",
        "Trigger:      RunNow",
        "Parent:       <none>",
        "Rerun:        <none>",
        "Phase:        Failed",
    ]
    assert lines[3].startswith(f"Scheduled:    {run['spec']['scheduledTime']} (")
    assert "Late:         no" in lines
    services = lines[lines.index("Services:") + 1 : lines.index("Events:")]
    assert [columns(line) for line in services] == [
        ["NAME", "PHASE", "JOB", "MESSAGE"],
        ["extract", "Succeeded", f"{name}-extract", "<none>"],
        [
            "transform",
            "Failed",
            f"{name}-transform",
            run["status"]["services"][1]["message"],
        ],
        ["load", "Skipped", "<none>", "not started: mandatory service transform failed"],
    ]
    events = [
        columns(line) for line in lines[lines.index("Events:") + 1 : lines.index("What next:")]
    ]
    assert events[0] == ["TYPE", "REASON", "AGE", "MESSAGE"]
    shown = [row[1] for row in events[1:]]
    assert {"RunCreated", "ServiceFailed", "ServiceSkipped", "RunFailed"} <= set(shown)
    assert shown.index("ServiceStarted") < shown.index("RunFailed")
    commands = [line.split("#")[0].strip() for line in lines[lines.index("What next:") + 1 :]]
    assert commands == [
        f"kubectl -n {ns} logs job/{name}-transform",
        f"kubectl almanac -n {ns} rerun {name}",
        f"kubectl almanac -n {ns} rerun {name} --failed-only",
    ]


def test_next_shows_the_fires_and_the_day_a_calendar_skips(k: Kubectl, crds: Kubectl) -> None:
    now = datetime.now(UTC)
    holiday = now.date() + timedelta(days=1)
    k.apply(
        calendar("bank-holidays", holiday=[holiday.strftime("%d.%m.%Y")]),
        scheduled_job(
            "daily", "0 12 * * *", timeZone="UTC", calendarRefs=[{"name": "bank-holidays"}]
        ),
    )
    # -n after the verb is the namespace, as in kubectl (the helper also gives it before).
    result = plugin(k, "next", "daily", "-n", str(k.namespace), "--count", "3", via_kubectl=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        lines[0] == 'ScheduledJob daily: "0 12 * * *" (fixed-time) in UTC, calendars bank-holidays'
    )
    assert columns(lines[1]) == ["UTC", "LOCAL (UTC)", "NOTE"]
    rows = [columns(line) for line in lines[2:]]
    first = now.date() if now.hour < 12 else holiday
    days = [first + timedelta(days=i) for i in range(5)]
    expected_fires = [d for d in days if d != holiday][:3]
    assert [r[0] for r in rows if r[0] != "skipped"] == [
        f"{d.isoformat()}T12:00:00Z" for d in expected_fires
    ]
    assert [r for r in rows if r[0] == "skipped"] == [
        [
            "skipped",
            f"{holiday:%a} {holiday.isoformat()}",
            f'excluded by holiday "{holiday:%d.%m.%Y}" (Calendar bank-holidays, spec.holiday[0])',
        ]
    ]
    skipped_at = [r[0] for r in rows].index("skipped")
    assert all(date.fromisoformat(r[0][:10]) > holiday for r in rows[skipped_at + 1 :])


def test_calendar_diff_shows_the_fires_an_edit_would_move(
    k: Kubectl, crds: Kubectl, tmp_path: Path
) -> None:
    k.apply(
        calendar("bank-holidays", holiday=["24.12.2099"]),
        scheduled_job(
            "daily", "0 12 * * *", timeZone="UTC", calendarRefs=[{"name": "bank-holidays"}]
        ),
        scheduled_job("unrelated", "0 12 * * *", timeZone="UTC"),
    )
    holiday = datetime.now(UTC).date() + timedelta(days=2)
    edited = tmp_path / "bank-holidays.yaml"
    edited.write_text(json.dumps(calendar("bank-holidays", holiday=[holiday.strftime("%d.%m.%Y")])))
    result = plugin(k, "calendar-diff", "-f", str(edited), "--days", "10")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Calendar bank-holidays: the fires this version moves")
    assert columns(lines[1]) == ["SCHEDULEDJOB", "CHANGE", "FIRE (UTC)", "LOCAL", "WHY"]
    assert columns(lines[2])[:3] == ["daily", "disappears", f"{holiday.isoformat()}T12:00:00Z"]
    assert lines[3] == "1 ScheduledJob(s) refer to it: 0 fire(s) appear, 1 disappear."
    # Nothing was applied: the live Calendar is unchanged.
    assert k.get("cal", "bank-holidays")["spec"]["holiday"] == ["24.12.2099"]


def test_calendar_diff_of_a_cluster_calendar_compares_the_jobs_of_every_namespace(
    k: Kubectl, crds: Kubectl, tmp_path: Path
) -> None:
    """Each referring job, named namespace/name, with its own namespace's Calendars."""
    name = f"company-{k.namespace}"  # cluster-scoped: one name per test namespace
    cluster = Kubectl(k.kubeconfig)
    other = f"{k.namespace}-other"
    refs = [{"kind": "ClusterCalendar", "name": name}]
    holiday = datetime.now(UTC).date() + timedelta(days=2)
    try:
        cluster.apply({**calendar(name, holiday=["24.12.2099"]), "kind": "ClusterCalendar"})
        cluster.run("create", "namespace", other)
        k.apply(scheduled_job("daily", "0 12 * * *", timeZone="UTC", calendarRefs=refs))
        there = scheduled_job("nightly", "0 12 * * *", timeZone="UTC", calendarRefs=refs)
        cluster.apply({**there, "metadata": {"name": "nightly", "namespace": other}})
        edited = tmp_path / f"{name}.yaml"
        new = calendar(name, holiday=[holiday.strftime("%d.%m.%Y")])
        edited.write_text(json.dumps({**new, "kind": "ClusterCalendar"}))
        result = plugin(k, "calendar-diff", "-f", str(edited), "--days", "10")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith(f"ClusterCalendar {name}: the fires this version moves")
        fire = f"{holiday.isoformat()}T12:00:00Z"
        assert [columns(line)[:3] for line in lines[2:4]] == [  # by namespace, then name
            [f"{k.namespace}/daily", "disappears", fire],
            [f"{other}/nightly", "disappears", fire],
        ]
        assert lines[4] == "2 ScheduledJob(s) refer to it: 0 fire(s) appear, 2 disappear."
    finally:
        cluster.run("delete", "clustercalendar", name, "--ignore-not-found", check=False)
        cluster.run("delete", "namespace", other, "--ignore-not-found", "--wait=false", check=False)


def test_calendar_diff_of_a_cluster_calendar_says_what_to_do_when_listing_is_forbidden(
    k: Kubectl, crds: Kubectl, tmp_path: Path
) -> None:
    """A ServiceAccount that may read its own namespace's objects only: a ClusterCalendar's
    diff needs every namespace's, and the API server's 403 comes with what to do."""
    from tests.integration.test_chart_identity import token_kubeconfig

    k.run("create", "serviceaccount", "reader")
    k.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader"},
            "rules": [
                {
                    "apiGroups": ["almanac.dev"],
                    "resources": ["scheduledjobs", "calendars"],
                    "verbs": ["get", "list"],
                }
            ],
        }
    )
    k.run(
        "create", "rolebinding", "reader", "--role=reader", f"--serviceaccount={k.namespace}:reader"
    )
    kubeconfig = token_kubeconfig(k, str(k.namespace), "reader", tmp_path / "reader.kubeconfig")
    edited = tmp_path / "company.yaml"
    edited.write_text(
        json.dumps({**calendar("company", holiday=["24.12.2099"]), "kind": "ClusterCalendar"})
    )
    result = plugin(k, "calendar-diff", "-f", str(edited), kubeconfig=kubeconfig)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(
        "Error: calendar-diff lists the ScheduledJobs and Calendars of all namespaces and the "
        "ClusterCalendars, which you may not (403: scheduledjobs.almanac.dev is forbidden"
    ), result.stderr
    assert "compare offline instead: almanac calendar-diff -f FILE --jobs MANIFEST" in (
        result.stderr
    )
    # The same user diffs a Calendar of its own namespace as before: ClusterCalendars are
    # listed only when a job there refers to one.
    edited.write_text(json.dumps(calendar("company", holiday=["24.12.2099"])))
    result = plugin(k, "calendar-diff", "-f", str(edited), kubeconfig=kubeconfig)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"No ScheduledJob in namespace {k.namespace} refers to")


def test_next_of_a_suspended_job_says_so_and_exits_1(k: Kubectl, crds: Kubectl) -> None:
    k.apply(scheduled_job("paused", "0 12 * * *", suspend=True))
    result = plugin(k, "next", "paused")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        'Error: scheduledjob "paused" is suspended (spec.suspend: true)'
    )


def test_a_missing_object_is_named_as_kubectl_names_it(k: Kubectl, crds: Kubectl) -> None:
    for verb, kind in [
        ("runs", "scheduledjob"),
        ("run", "scheduledjob"),
        ("next", "scheduledjob"),
        ("rerun", "scheduledjobrun"),
        ("describe", "scheduledjobrun"),
    ]:
        result = plugin(k, verb, "nope")
        assert (result.returncode, result.stdout, result.stderr) == (
            1,
            "",
            f'Error: {kind} "nope" not found in namespace "{k.namespace}"\n',
        ), verb


def test_an_unreachable_cluster_is_one_line_naming_the_server(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: someone, user: {token: t}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: someone}}]\n"
        "current-context: gone\n"
    )
    result = plugin(Kubectl(kubeconfig, "default"), "runs", "nightly")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: cannot reach the Kubernetes API server at https://127.0.0.1:1 (connection "
        "refused); is the cluster running and is this the right context? Check with: "
        "kubectl cluster-info\n"
    )
