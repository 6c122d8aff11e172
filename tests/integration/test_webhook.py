"""The validating webhook, registered with the real API server, through `kubectl apply`."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

import yaml

from tests.integration.conftest import Admission, register
from tests.integration.objects import calendar, scheduled_job, scheduled_job_run, service
from tests.integration.test_operator import run_now, runs_of
from tests.kube import Kubectl, wait_until


def test_the_webhook_refuses_what_the_engine_rejects_and_warns_about_missing_calendars(
    k: Kubectl, admission: Callable[..., Admission]
) -> None:
    admission()
    # The schema cannot know cron or zones; the webhook does, with `almanac next`'s words.
    error = k.apply_expecting_error(scheduled_job("badcron", "61 * * * *"))
    assert 'admission webhook "scheduledjobs.' in error and "spec.schedule" in error
    error = k.apply_expecting_error(scheduled_job("badzone", timeZone="Mars/Olympus"))
    assert "spec.timeZone" in error
    # A Calendar that does not exist yet is admitted, with a warning kubectl prints.
    result = k.apply(scheduled_job("early", calendarRefs=[{"name": "later"}]))
    assert 'Calendar "later" does not exist yet' in result.stderr
    result = k.apply(
        calendar("later", holiday=["24.12.2027"]),
        scheduled_job("good", "30 2 * * 1-5", timeZone="Europe/Bucharest"),
    )
    assert k.get("sj", "good") is not None and k.get("cal", "later") is not None
    # An edit that would stop a job referring to the Calendar is admitted, and named.
    result = k.apply(calendar("later", annual=["01.01"]))
    assert 'ScheduledJob "early" would never fire again with this Calendar' in result.stderr, (
        result.stderr
    )
    assert k.get("cal", "later")["spec"]["annual"] == ["01.01"]


def test_a_cluster_calendar_edit_that_would_stop_a_job_is_admitted_with_a_warning(
    k: Kubectl, admission: Callable[..., Admission]
) -> None:
    """A ClusterCalendar's referring jobs are of every namespace: the warning names the
    job with its namespace."""
    served = admission()
    name = f"closed-{k.namespace}"  # cluster-scoped: one name per test namespace
    cluster = Kubectl(k.kubeconfig)
    # ClusterCalendars have no namespace to select: this test's is labelled.
    hook = f"almanac-ccal-{k.namespace}"
    register(
        k, hook, served.port, served.ca, [("clustercalendars", "validate-clustercalendar")],
        selector={"objectSelector": {"matchLabels": {"test": k.namespace}}}, scope="Cluster",
    )  # fmt: skip

    def cluster_calendar(**lists: object) -> dict[str, object]:
        body = calendar(name, **lists)
        return {
            **body,
            "kind": "ClusterCalendar",
            "metadata": {**body["metadata"], "labels": {"test": k.namespace}},
        }

    refs = [{"kind": "ClusterCalendar", "name": name}]
    try:
        cluster.apply(cluster_calendar(holiday=["24.12.2027"]))
        k.apply(scheduled_job("new-year", calendarRefs=refs))  # 1 January, 00:00
        result = cluster.apply(cluster_calendar(annual=["01.01"]))
        expected = f'ScheduledJob "{k.namespace}/new-year" would never fire again with this '
        assert expected + "ClusterCalendar" in result.stderr, result.stderr
        assert cluster.get("clustercalendar", name)["spec"]["annual"] == ["01.01"]
    finally:
        cluster.run(
            "delete", "validatingwebhookconfiguration", hook, "--ignore-not-found", check=False
        )
        cluster.run("delete", "clustercalendar", name, "--ignore-not-found", check=False)


def test_a_calendar_edit_is_answered_within_the_api_servers_wait_however_many_jobs_refer(
    k: Kubectl, admission: Callable[..., Admission]
) -> None:
    """With ``failurePolicy: Fail`` a late answer refuses the edit itself. Each of these
    jobs takes the review some milliseconds (its Calendar has 4,000 holidays, and a
    holiday of its own makes its exclusions its own, shared with no other job), 300 of
    them far more than half a second (1.1 s offline); the webhook checks what it can in
    half the wait the API server sends (1 s here) and says how many it did not check."""
    days = [(date(2027, 1, 1) + timedelta(days=3 * i)).strftime("%d.%m.%Y") for i in range(4000)]
    refs = [{"name": "busy"}]

    def own(i: int) -> dict[str, list[str]]:
        return {"holiday": [(date(2027, 1, 2) + timedelta(days=i)).strftime("%d.%m.%Y")]}

    k.apply(
        calendar("busy", holiday=days),
        *(scheduled_job(f"job-{i}", calendarRefs=refs, exclusions=own(i)) for i in range(300)),
    )
    served = admission()
    # Decided, so that the operator's start does not hold the review up.
    wait_until(
        "every job decided",
        lambda: all(j.get("status", {}).get("nextScheduleTime") for j in k.items("sj")),
        timeout=120,
    )
    k.run("delete", "validatingwebhookconfiguration", served.name)
    register(
        k, served.name, served.port, served.ca, [("calendars", "validate-calendar")],
        timeout_seconds=1,
    )  # fmt: skip
    result = k.apply(calendar("busy", holiday=days[1:]))
    found = re.search(
        r"(\d+) of the 300 ScheduledJobs that refer to this Calendar were not", result.stderr
    )
    assert found and 0 < int(found.group(1)) <= 300, result.stderr
    assert k.get("cal", "busy")["spec"]["holiday"] == days[1:]


def grant(k: Kubectl, user: str, rules: list[dict[str, object]]) -> None:
    """A Role with ``rules`` in the test's namespace, bound to ``user``."""
    k.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": user},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


ALMANAC_EDIT = {  # what the chart's almanac-edit grants, runs included for the test
    "apiGroups": ["almanac.dev"],
    "resources": ["scheduledjobs", "scheduledjobruns", "calendars"],
    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
}
CREATE_JOBS = {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}


def test_the_webhook_lets_only_users_who_may_create_jobs_run_them_and_only_the_operator_create_runs(
    k: Kubectl, admission: Callable[..., Admission]
) -> None:
    admission()
    grant(k, "alice", [ALMANAC_EDIT])  # may edit ScheduledJobs, may not create Jobs
    grant(k, "bob", [ALMANAC_EDIT, CREATE_JOBS])
    privileged = scheduled_job("root", services=[service("x")])
    privileged["spec"]["services"][0]["jobTemplate"]["spec"]["template"]["spec"]["hostPID"] = True
    result = k.run(
        "apply", "--as", "alice", "-f", "-", stdin=yaml.safe_dump(privileged), check=False
    )
    assert result.returncode != 0
    assert 'alice may not create Jobs in namespace "' in result.stderr, result.stderr
    assert k.get("sj", "root") is None
    # A run made by hand (for a job that does not even exist) is refused to anyone.
    handmade = scheduled_job_run("handmade", "ghost", services=privileged["spec"]["services"])
    for user in ("alice", "bob"):
        result = k.run(
            "create", "--as", user, "-f", "-", stdin=yaml.safe_dump(handmade), check=False
        )
        assert "only the Almanac operator creates ScheduledJobRuns" in result.stderr, result.stderr
    # Bob may create Jobs: his job is admitted, his run-now runs (the operator's own
    # create of the run passes the webhook).
    k.run("apply", "--as", "bob", "-f", "-", stdin=yaml.safe_dump(scheduled_job("bobs")))
    result = k.run(
        "annotate", "--as", "alice", "sj", "bobs", "almanac.dev/run-now=now", check=False
    )
    assert "alice may not create Jobs" in result.stderr, result.stderr
    run_now(k, "bobs")
    assert len(runs_of(k, "bobs")) == 1
