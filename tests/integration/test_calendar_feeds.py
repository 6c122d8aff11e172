"""Calendar feeds and ClusterCalendars on the real control plane (issue 17, parts 3-5).

- a ClusterCalendar with ``holidays`` moves a job's ``nextScheduleTime`` past a public
  holiday, as a Calendar does;
- a feed served by a real HTTP server on loopback (``http.server`` in a thread) is
  fetched, changed (the job's next fire moves), made unreachable (the last copy is kept,
  the status says so), and still kept after an operator restart;
- a feed never fetched holds its job (Ready=False, CalendarNotFetched, an Event);
- a scheduled run records the calendars it obeyed, with their versions.

Dates are computed from today, so no date is written in the test; waits poll with a
bound.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from almanac.api.names import API_VERSION
from tests.integration.conftest import Admission, Operator, register
from tests.integration.objects import calendar, scheduled_job
from tests.integration.test_world_calendars import first_working_day, next_holiday, noon_utc
from tests.kube import Kubectl, wait_until


class Feed:
    """An iCalendar feed on loopback whose answer the test changes."""

    def __init__(self) -> None:
        self.status = 200
        self.body = ""
        self.requests = 0
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.requests += 1
                data = feed.body.encode()
                self.send_response(feed.status)
                self.send_header("Content-Type", "text/calendar; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/team/holidays.ics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def operator(start_operator: Callable[..., Operator]) -> Operator:
    """The operator, fetching feeds from loopback over plain http, and from no other host."""
    return start_operator(*ALLOW_LOOPBACK)


ALLOW_LOOPBACK = ("--feed-allowed-hosts", "http://127.0.0.1")


@pytest.fixture
def feed() -> Iterator[Feed]:
    served = Feed()
    yield served
    served.close()


def ics(*days: date) -> str:
    """One all-day event per day."""
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:{d.isoformat()}@test\r\nSUMMARY:Day off {d.isoformat()}\r\n"
        f"DTSTART;VALUE=DATE:{d.strftime('%Y%m%d')}\r\nEND:VEVENT\r\n"
        for d in days
    )
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//feed//EN\r\n{events}END:VCALENDAR\r\n"
    )


def noon(day: date) -> str:
    return f"{day.isoformat()}T12:00:00Z"


def next_fire(k: Kubectl, job: str) -> str | None:
    return ((k.get("sj", job) or {}).get("status") or {}).get("nextScheduleTime")


def feed_status(k: Kubectl, name: str) -> dict[str, Any]:
    return ((k.get("cal", name) or {}).get("status") or {}).get("source") or {}


def ready(body: dict[str, Any] | None) -> dict[str, Any]:
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def test_a_cluster_calendar_moves_the_next_fire_past_a_public_holiday(
    k: Kubectl, operator: Operator
) -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Bucharest")
    holiday = next_holiday(datetime.now(UTC).astimezone(zone).date() + timedelta(days=1))
    name = f"ro-banks-{k.namespace}"  # cluster-scoped: one name per test namespace
    cluster = Kubectl(k.kubeconfig)
    try:
        cluster.apply(
            {
                "apiVersion": API_VERSION,
                "kind": "ClusterCalendar",
                "metadata": {"name": name},
                "spec": {"description": "Romanian bank holidays"},
            }
        )
        k.apply(
            scheduled_job(
                "settlement",
                "0 12 * * *",
                timeZone="Europe/Bucharest",
                startTime=f"{holiday.isoformat()}T00:00:00",
                calendarRefs=[{"kind": "ClusterCalendar", "name": name}],
            )
        )
        wait_until(
            f"nextScheduleTime on the holiday {holiday}",
            lambda: next_fire(k, "settlement") == noon_utc(holiday),
        )
        cluster.run(
            "patch", "clustercalendar", name, "--type=merge",
            "-p", '{"spec": {"holidays": [{"country": "RO"}]}}',
        )  # fmt: skip
        after = first_working_day(holiday)
        wait_until(
            f"nextScheduleTime past the holiday, on {after}",
            lambda: next_fire(k, "settlement") == noon_utc(after),
        )
        assert ready(k.get("sj", "settlement"))["status"] == "True"
        # The API server defaulted the reference's kind of a plain reference, and kept ours.
        refs = k.get("sj", "settlement")["spec"]["calendarRefs"]  # type: ignore[index]
        assert refs == [{"kind": "ClusterCalendar", "name": name}]
    finally:
        cluster.run("delete", "clustercalendar", name, "--ignore-not-found", check=False)


def test_a_feed_is_fetched_refreshed_and_kept_when_unreachable(
    k: Kubectl, operator: Operator, feed: Feed
) -> None:
    start = datetime.now(UTC).date() + timedelta(days=3)
    feed.body = ics(start)
    k.apply(
        calendar("team-days-off", source={"url": feed.url, "refreshInterval": "10s"}),
        scheduled_job(
            "report", "0 12 * * *", timeZone="UTC",
            startTime=f"{start.isoformat()}T00:00:00",
            calendarRefs=[{"name": "team-days-off"}],
        ),
    )  # fmt: skip
    wait_until(
        "the next fire past the feed's day off",
        lambda: next_fire(k, "report") == noon(start + timedelta(days=1)),
    )
    first = feed_status(k, "team-days-off")
    assert first["revision"].startswith("sha256:") and first["events"] == 1
    assert first["dates"] == 1 and first["lastFetchTime"] and "lastError" not in first
    body = k.get("cal", "team-days-off")
    assert ready(body)["reason"] == "Fetched"
    assert feed.url not in str(body.get("status"))  # type: ignore[union-attr]

    # The feed changes: the next refresh moves the job's next fire.
    feed.body = ics(start, start + timedelta(days=1))
    wait_until(
        "the next fire past both days off",
        lambda: next_fire(k, "report") == noon(start + timedelta(days=2)),
        timeout=60,
    )
    second = feed_status(k, "team-days-off")
    assert second["revision"] != first["revision"] and second["events"] == 2
    assert any(e["reason"] == "Fetched" for e in k.events("team-days-off"))

    # Unreachable: the last copy stays, the status says why.
    feed.status = 503
    failed = wait_until(
        "the failed fetch in the status",
        lambda: (feed_status(k, "team-days-off").get("lastError") or {}).get("message"),
        timeout=60,
    )
    assert failed == "HTTP 503 Service Unavailable"
    kept = feed_status(k, "team-days-off")
    assert kept["revision"] == second["revision"] and kept["content"] == second["content"]
    condition = ready(k.get("cal", "team-days-off"))
    assert (condition["status"], condition["reason"]) == ("True", "FetchFailed")
    assert "HTTP 503" in condition["message"] and second["revision"] in condition["message"]
    assert next_fire(k, "report") == noon(start + timedelta(days=2))
    warnings = [e for e in k.events("team-days-off") if e["reason"] == "FetchFailed"]
    assert warnings and warnings[-1]["type"] == "Warning"

    # A restarted operator has the copy from the status, the feed still down.
    operator.stop()
    feed.close()
    operator.start()
    wait_until(
        "a fetch attempt after the restart",
        lambda: feed_status(k, "team-days-off").get("lastAttemptTime") != kept["lastAttemptTime"],
        timeout=60,
    )
    assert "cannot connect" in feed_status(k, "team-days-off")["lastError"]["message"]
    assert next_fire(k, "report") == noon(start + timedelta(days=2))
    assert ready(k.get("sj", "report"))["status"] == "True"
    # The URL (which may carry a token) is in no log line.
    assert feed.url not in operator.log() and "/team/holidays.ics" not in operator.log()


def test_a_feed_never_fetched_holds_its_job(k: Kubectl, operator: Operator, feed: Feed) -> None:
    feed.status = 404
    k.apply(
        calendar("company", source={"url": feed.url}),
        scheduled_job("payroll", "* * * * *", calendarRefs=[{"name": "company"}]),
    )
    held = wait_until(
        "the job held by its unfetched Calendar",
        lambda: (c := ready(k.get("sj", "payroll"))).get("reason") == "CalendarNotFetched" and c,
    )
    assert held["status"] == "False"
    assert "Calendar company has not been fetched yet" in held["message"]
    assert "HTTP 404" in held["message"]
    assert next_fire(k, "payroll") is None
    events = [e for e in k.events("payroll") if e["reason"] == "CalendarNotFetched"]
    assert events and events[0]["type"] == "Warning"
    cal = k.get("cal", "company")
    assert (ready(cal)["status"], ready(cal)["reason"]) == ("False", "NotFetched")
    assert not k.items("sjr")  # a `* * * * *` job: nothing fired while held

    # The feed comes up: the job is scheduled.
    feed.body, feed.status = ics(datetime.now(UTC).date() + timedelta(days=30)), 200
    k.run("patch", "cal", "company", "--type=merge", "-p", '{"spec": {"description": "now"}}')
    wait_until(
        "the job scheduled", lambda: ready(k.get("sj", "payroll")).get("reason") == "Scheduled"
    )


def test_a_feed_on_a_host_not_allowed_is_never_fetched_and_says_which_hosts_are(
    k: Kubectl, operator: Operator, feed: Feed
) -> None:
    """The same server by another name (localhost, not the allowed 127.0.0.1): the
    operator does not connect, and the Calendar says why, in the administrator's terms."""
    feed.body = ics(datetime.now(UTC).date() + timedelta(days=30))
    elsewhere = feed.url.replace("127.0.0.1", "localhost")
    k.apply(calendar("elsewhere", source={"url": elsewhere + "?token=s3cret"}))
    refused = wait_until(
        "the Calendar's fetch refused", lambda: ready(k.get("cal", "elsewhere")).get("message")
    )
    port = elsewhere.split(":")[2].split("/")[0]
    assert (
        f"http://localhost:{port}: localhost is not a host the operator fetches feeds from "
        "(allowed: http://127.0.0.1; set by the operator's --feed-allowed-hosts)"
    ) in refused
    assert feed.requests == 0
    status = (k.get("cal", "elsewhere") or {})["status"]
    assert "s3cret" not in operator.log() and "s3cret" not in json.dumps(status)


def test_a_scheduled_run_records_the_calendars_it_obeyed(k: Kubectl, operator: Operator) -> None:
    """A ConfigMap feed and a plain Calendar: the run lists both, with the Calendars'
    resourceVersions and the feed's content hash."""
    far = datetime.now(UTC).date() + timedelta(days=40)
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "days-off"},
            "data": {"calendar.ics": ics(far)},
        },
        calendar("team", source={"configMapKeyRef": {"name": "days-off", "key": "calendar.ics"}}),
        calendar("office", annual=[far.strftime("%d.%m")]),
        scheduled_job(
            "every-minute", "* * * * *",
            calendarRefs=[{"name": "team"}, {"name": "office"}],
        ),
    )  # fmt: skip
    wait_until("the feed fetched", lambda: feed_status(k, "team").get("revision"))
    run = wait_until(
        "a scheduled run with its calendars",
        lambda: next((r for r in k.items("sjr") if (r.get("status") or {}).get("calendars")), None),
        timeout=120,
    )
    team, office = k.get("cal", "team"), k.get("cal", "office")
    assert team is not None and office is not None
    recorded = run["status"]["calendars"]
    assert recorded == run["spec"]["calendars"]
    assert [(c["kind"], c["name"]) for c in recorded] == [
        ("Calendar", "team"),
        ("Calendar", "office"),
    ]
    assert recorded[0]["revision"] == team["status"]["source"]["revision"]
    assert recorded[1]["resourceVersion"] == office["metadata"]["resourceVersion"]
    assert "revision" not in recorded[1]


def test_the_webhook_checks_sources_of_both_kinds_and_warns_of_an_unfetched_feed(
    k: Kubectl, admission: Callable[..., Admission]
) -> None:
    served = admission(*ALLOW_LOOPBACK)
    cluster = Kubectl(k.kubeconfig)
    # ClusterCalendars have no namespace to select: this test's are labelled.
    cluster_hook = f"almanac-ccal-{k.namespace}"
    register(
        k,
        cluster_hook,
        served.port,
        served.ca,
        [("clustercalendars", "validate-clustercalendar")],
        selector={"objectSelector": {"matchLabels": {"test": k.namespace}}},
        scope="Cluster",
    )
    try:
        error = k.apply_expecting_error(
            calendar("fast", source={"url": "https://example.com/a.ics", "refreshInterval": "1s"})
        )
        # The CRD refuses an interval out of bounds before the webhook is asked.
        assert 'spec.source.refreshInterval: Invalid value: "1s"' in error
        assert "must be a duration from 10s to 168h" in error
        error = cluster.apply_expecting_error(
            {
                "apiVersion": API_VERSION,
                "kind": "ClusterCalendar",
                "metadata": {"name": f"fast-{k.namespace}", "labels": {"test": k.namespace}},
                "spec": {"source": {"url": "https://example.com/a.ics", "refreshInterval": "9s"}},
            }
        )
        assert 'spec.source.refreshInterval: Invalid value: "9s"' in error
        assert "must be a duration from 10s to 168h" in error
        # The CRD refuses a Calendar's namespaced reference before the webhook.
        error = k.apply_expecting_error(
            calendar(
                "other", source={"configMapKeyRef": {"name": "a", "key": "k", "namespace": "x"}}
            )
        )
        assert "namespace is not allowed in a Calendar" in error
        # A URL on a host the operator does not fetch from, refused with the field.
        metadata = "https://169.254.169.254/latest/meta-data/iam/security-credentials"
        for kubectl, kind in ((k, "Calendar"), (cluster, "ClusterCalendar")):
            error = kubectl.apply_expecting_error(
                {
                    "apiVersion": API_VERSION,
                    "kind": kind,
                    "metadata": {"name": f"cloud-{k.namespace}", "labels": {"test": k.namespace}},
                    "spec": {"source": {"url": metadata}},
                }
            )
            assert (
                "spec.source.url: https://169.254.169.254: 169.254.169.254 is not a host the "
                "operator fetches feeds from (allowed: http://127.0.0.1;"
            ) in error, error
            assert "security-credentials" not in error
        # A job whose feed was never fetched is admitted, with a warning.
        k.apply(calendar("later", source={"url": "http://127.0.0.1:9/never.ics"}))
        result = k.apply(scheduled_job("held", calendarRefs=[{"name": "later"}]))
        assert "Calendar later has not been fetched yet" in result.stderr
    finally:
        cluster.run(
            "delete", "validatingwebhookconfiguration", cluster_hook, "--ignore-not-found",
            check=False,
        )  # fmt: skip
