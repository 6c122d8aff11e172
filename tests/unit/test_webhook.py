"""The webhook every replica serves: its decisions (a table), its own certificate, and
one real HTTPS exchange on loopback (the integration suite registers it with the API
server)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from almanac.controller import certificates, webhook
from almanac.controller.settings import SelfManagedCertificate, Settings
from almanac.controller.webhook import (
    Admission,
    Verdict,
    WebhookServer,
    answer_within,
    provision,
    tls_context,
)
from tests.unit.fake_kube import FakeKube

OPERATOR = "system:serviceaccount:almanac-system:almanac"
JOBS = "batch/jobs"


def job(schedule: str = "0 3 * * *", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJob",
        "metadata": {"name": "nightly", "namespace": "ns"},
        "spec": {
            "schedule": schedule,
            "services": [
                {
                    "name": "report",
                    "jobTemplate": {
                        "spec": {
                            "template": {
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [{"name": "c", "image": "busybox"}],
                                }
                            }
                        }
                    },
                }
            ],
            **spec,
        },
    }


def run(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "ScheduledJobRun",
        "metadata": {"name": "nightly-1-m0", "namespace": "ns", "annotations": annotations or {}},
        "spec": {"scheduledJob": "nightly", "scheduledTime": "2027-01-01T03:00:00Z"},
    }


def request(
    operation: str, user: str, obj: dict[str, Any], old: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "uid": "u-1",
        "operation": operation,
        "namespace": "ns",
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
    }


CASES: list[tuple[str, str, dict[str, Any], tuple[bool, int, str]]] = [
    # (resource, who may create Jobs, request, (allowed, code, in the message))
    ("scheduledjobs", "alice", request("CREATE", "alice", job()), (True, 200, "")),
    (
        "scheduledjobs",
        "",
        request("CREATE", "alice", job()),
        (False, 403, 'alice may not create Jobs in namespace "ns"'),
    ),
    (
        "scheduledjobs",
        "alice",
        request("CREATE", "alice", job("61 * * * *")),
        (False, 422, "spec.schedule"),
    ),
    # Only the status changed (the operator, or a user's label): no Job more runs.
    (
        "scheduledjobs",
        "",
        request("UPDATE", "alice", {**job(), "status": {"x": 1}}, job()),
        (True, 200, ""),
    ),
    (
        "scheduledjobs",
        "",
        request(
            "UPDATE",
            "alice",
            {
                **job(),
                "metadata": {**job()["metadata"], "annotations": {"almanac.dev/run-now": "now"}},
            },
            job(),
        ),
        (False, 403, "may not create Jobs"),
    ),
    ("scheduledjobs", "", request("UPDATE", OPERATOR, job("5 3 * * *"), job()), (True, 200, "")),
    (
        "scheduledjobruns",
        "alice",
        request("CREATE", "alice", run()),
        (False, 403, "only the Almanac operator"),
    ),
    ("scheduledjobruns", "", request("CREATE", OPERATOR, run()), (True, 200, "")),
    (
        "scheduledjobruns",
        "",
        request("UPDATE", "alice", run({"almanac.dev/rerun": "now"}), run()),
        (False, 403, "may not create Jobs"),
    ),
    (
        "scheduledjobruns",
        "alice",
        request("UPDATE", "alice", run({"almanac.dev/rerun": "failed"}), run()),
        (True, 200, ""),
    ),
    (
        "calendars",
        "",
        request(
            "CREATE",
            "alice",
            {"metadata": {"name": "c", "namespace": "ns"}, "spec": {"holiday": ["31.02.2027"]}},
        ),
        (False, 422, "spec.holiday[0]"),
    ),
]


@pytest.mark.parametrize(("resource", "may_create_jobs", "call", "expected"), CASES)
def test_admission_decides_by_kind_user_and_spec(
    resource: str, may_create_jobs: str, call: dict[str, Any], expected: tuple[bool, int, str]
) -> None:
    kube = FakeKube()
    if may_create_jobs:
        kube.allowed.add((may_create_jobs, "create", JOBS, "ns"))
    verdict = asyncio.run(Admission(kube, Settings(), OPERATOR).review(resource, call))  # type: ignore[arg-type]
    allowed, code, said = expected
    assert (verdict.allowed, verdict.code) == (allowed, code), verdict.message
    assert said in verdict.message


def test_a_missing_calendar_is_admitted_with_a_warning() -> None:
    kube = FakeKube()
    kube.allowed.add(("alice", "create", JOBS, "ns"))
    call = request("CREATE", "alice", job(calendarRefs=[{"name": "banks"}]))
    verdict = asyncio.run(Admission(kube, Settings(), OPERATOR).review("scheduledjobs", call))  # type: ignore[arg-type]
    assert verdict.allowed
    assert any('Calendar "banks" does not exist yet' in w for w in verdict.warnings)
    kube.put("calendars", {"metadata": {"name": "banks"}, "spec": {"holiday": ["25.12.2027"]}})
    verdict = asyncio.run(Admission(kube, Settings(), OPERATOR).review("scheduledjobs", call))  # type: ignore[arg-type]
    assert verdict.allowed and verdict.warnings == ()


def test_a_calendar_edit_whose_jobs_cannot_be_listed_in_time_is_admitted_with_a_warning() -> None:
    """The API server stops waiting at the deadline, and ``failurePolicy: Fail`` then
    refuses the edit: the review answers at the deadline, whatever the LIST does."""

    class Stalled(FakeKube):
        async def list_pages(self, collection: Any) -> Any:
            await asyncio.Event().wait()  # an API server that never answers
            yield [], ""

    edit = {"kind": "Calendar", "metadata": {"name": "banks"}, "spec": {"annual": ["01.01"]}}
    call = request("UPDATE", "alice", edit)
    admission = Admission(Stalled(), Settings(), OPERATOR)  # type: ignore[arg-type]

    async def review() -> Verdict:
        return await admission.review("calendars", call, time.monotonic() + 0.05)

    verdict = asyncio.run(review())
    assert verdict.allowed
    assert [w.split(" that refer")[0] for w in verdict.warnings] == ["The ScheduledJobs"]
    assert "kubectl almanac calendar-diff" in verdict.warnings[0]


def mondays_job(name: str, namespace: str = "ns", kind: str = "Calendar") -> dict[str, Any]:
    """A job that fires on Mondays only and refers to the calendar ``banks``."""
    body = job("0 3 * * MON", calendarRefs=[{"kind": kind, "name": "banks"}])
    body["metadata"] = {"name": name, "namespace": namespace}
    return body


@pytest.mark.parametrize(("kind", "plural", "namespace", "named"), [
    ("Calendar", "calendars", "ns", ["a1", "a2", "a3", "a4", "a5"]),
    ("ClusterCalendar", "clustercalendars", "", ["ns/a1", "ns/a2", "ns/a3", "ns/a4", "ns/a5",
                                                 "other/b1"]),
])  # fmt: skip
def test_a_calendar_edit_is_checked_against_every_page_of_the_jobs_that_refer_to_it(
    kind: str, plural: str, namespace: str, named: list[str]
) -> None:
    """The jobs are listed a page at a time (here 2) and each page checked while the next
    is listed: every referring job of every page is named, in order, and no other."""
    kube = FakeKube()
    kube.page = 2
    kube.put(plural, {"metadata": {"name": "banks", "namespace": namespace}, "spec": {}})
    for i in range(1, 6):
        kube.put("scheduledjobs", mondays_job(f"a{i}", kind=kind))
    kube.put("scheduledjobs", mondays_job("b1", "other", kind=kind))
    unrelated = mondays_job("c1")
    unrelated["spec"]["calendarRefs"] = [{"name": "other-calendar"}]
    kube.put("scheduledjobs", unrelated)
    edit = {"kind": kind, "metadata": {"name": "banks"}, "spec": {"weekly": ["Monday"]}}
    call = {**request("UPDATE", "alice", edit), "namespace": namespace}
    admission = Admission(kube, Settings(), OPERATOR)  # type: ignore[arg-type]
    verdict = asyncio.run(admission.review(plural, call, time.monotonic() + 30))
    assert verdict.allowed
    assert [w.split('"')[1] for w in verdict.warnings] == named
    assert all("would never fire again" in w for w in verdict.warnings)


def test_a_review_cut_short_while_listing_names_what_it_checked() -> None:
    """The API server answers the first page and then nothing: the first page's jobs are
    checked and named, and the warning says that the rest were not."""

    class FirstPageOnly(FakeKube):
        async def list_pages(self, collection: Any) -> Any:
            async for items, version in super().list_pages(collection):
                yield items, version
                await asyncio.Event().wait()  # the second page never comes

    kube = FirstPageOnly()
    kube.page = 2
    kube.put("calendars", {"metadata": {"name": "banks"}, "spec": {}})
    for i in range(1, 6):
        kube.put("scheduledjobs", mondays_job(f"a{i}"))
    edit = {"kind": "Calendar", "metadata": {"name": "banks"}, "spec": {"weekly": ["Monday"]}}
    admission = Admission(kube, Settings(), OPERATOR)  # type: ignore[arg-type]

    async def review() -> Verdict:
        return await admission.review(
            "calendars", request("UPDATE", "alice", edit), time.monotonic() + 0.5
        )

    verdict = asyncio.run(review())
    assert verdict.allowed
    assert [w.split('"')[1] for w in verdict.warnings[:-1]] == ["a1", "a2"]
    assert verdict.warnings[-1].startswith(
        "The ScheduledJobs that refer to this Calendar, but for the first 2, were not checked"
    )


@pytest.mark.parametrize(("kind", "plural", "namespace"), [
    ("Calendar", "calendars", "ns"),
    ("ClusterCalendar", "clustercalendars", ""),
])  # fmt: skip
def test_a_backfill_is_reviewed_with_the_calendars_of_either_kind_its_job_refers_to(
    kind: str, plural: str, namespace: str
) -> None:
    """Over a weekend the job's calendar excludes, the Backfill has nothing to run, and
    the review says so; a ClusterCalendar's job was said to be invalid ("not found")."""
    kube = FakeKube()
    kube.allowed.add(("alice", "create", JOBS, "ns"))
    kube.put("scheduledjobs", job(calendarRefs=[{"kind": kind, "name": "bank"}]))
    weekends = {"weekly": ["Saturday", "Sunday"]}
    kube.put(plural, {"metadata": {"name": "bank", "namespace": namespace}, "spec": weekends})
    backfill = {
        "apiVersion": "almanac.dev/v1alpha1",
        "kind": "Backfill",
        "metadata": {"name": "weekend", "namespace": "ns"},
        "spec": {
            "scheduledJob": "nightly",
            "from": "2026-11-07T00:00:00Z",  # a Saturday
            "to": "2026-11-09T00:00:00Z",
        },
    }
    call = request("CREATE", "alice", backfill)
    verdict = asyncio.run(Admission(kube, Settings(), OPERATOR).review("backfills", call))  # type: ignore[arg-type]
    assert verdict.allowed
    assert [w.split(": ", 1)[1] for w in verdict.warnings] == [
        'ScheduledJob "nightly" fires no instant in [2026-11-07T00:00:00Z, '
        "2026-11-09T00:00:00Z): the Backfill succeeds without a run"
    ], verdict.warnings


def _big_calendar() -> dict[str, Any]:
    """A Calendar whose inline ``spec.ical`` (up to 256 KiB) takes a while to check."""
    todos = "".join(f"BEGIN:VTODO\r\nUID:t{i}@x\r\nEND:VTODO\r\n" for i in range(200))
    ical = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{todos}END:VCALENDAR\r\n"
    return {
        "kind": "Calendar",
        "metadata": {"name": "big", "namespace": "ns"},
        "spec": {"ical": ical},
    }


@pytest.mark.parametrize(
    ("resource", "check", "body"),
    [
        ("calendars", "review_calendar", _big_calendar()),
        ("scheduledjobs", "review_scheduled_job", job()),
    ],
)
def test_every_review_checks_the_object_off_the_event_loop(
    resource: str, check: str, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every replica serves the webhook in the operator's process: a check (an inline
    iCalendar parsed, a schedule searched) on the event loop would stall the leader's
    fires for everyone, at each review (a server-side dry run in a loop is enough)."""
    threads: list[threading.Thread] = []
    real = getattr(webhook, check)

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(webhook, check, recording)
    kube = FakeKube()
    kube.allowed.add(("alice", "create", JOBS, "ns"))
    verdict = asyncio.run(
        Admission(kube, Settings(), OPERATOR).review(resource, request("CREATE", "alice", body))  # type: ignore[arg-type]
    )
    assert verdict.allowed, verdict.message
    assert threads and all(t is not threading.main_thread() for t in threads)


def test_without_its_own_name_the_webhook_refuses_every_run_create() -> None:
    """Fail closed: an operator that could not learn who it is cannot tell its own
    creates from a squatter's."""
    admission = Admission(FakeKube(), Settings(), None)  # type: ignore[arg-type]
    verdict = asyncio.run(admission.review("scheduledjobruns", request("CREATE", OPERATOR, run())))
    assert (verdict.allowed, verdict.code) == (False, 403)


def test_the_response_is_an_admission_review_with_status_and_warnings() -> None:
    refused = Verdict(False, "spec.schedule: bad", 422, ("careful",)).response("u-9")
    assert refused == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": "u-9",
            "allowed": False,
            "status": {"code": 422, "message": "spec.schedule: bad"},
            "warnings": ["careful"],
        },
    }
    assert Verdict(True).response("u-1")["response"] == {"uid": "u-1", "allowed": True}


# --- the operator's own certificate ------------------------------------------------------

WHERE = SelfManagedCertificate.for_service("almanac-system", "tls", "almanac", "almanac-webhook")
NOW = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [
        ("5s", 2.5),  # the chart's timeoutSeconds, as the API server writes it
        ("1s", 0.5),
        ("30s", 15.0),
        ("2.5s", 1.25),
        (None, 5.0),  # no parameter: the API's default wait, 10 s
        ("", 5.0),
        ("5", 5.0),  # not a duration the API server writes: the default
        ("1m0s", 5.0),
        ("-5s", 5.0),
    ],
)
def test_a_review_takes_half_the_wait_the_api_server_sends(
    timeout: str | None, seconds: float
) -> None:
    assert answer_within(timeout) == seconds


def test_the_certificate_names_the_service_as_the_api_server_calls_it() -> None:
    assert WHERE.dns_names == (
        "almanac-webhook.almanac-system.svc",
        "almanac-webhook.almanac-system.svc.cluster.local",
        "almanac-webhook.almanac-system",
        "almanac-webhook",
    )


@pytest.mark.parametrize(
    ("names", "at", "usable"),
    [
        (WHERE.dns_names, NOW, True),
        (WHERE.dns_names[:1], NOW, True),
        (("other.almanac-system.svc",), NOW, False),
        (WHERE.dns_names, NOW + certificates.VALIDITY - certificates.RENEW_BEFORE, False),
        (WHERE.dns_names, NOW + timedelta(days=3000), True),
    ],
)
def test_a_certificate_is_reused_while_it_names_the_service_and_is_not_due(
    names: tuple[str, ...], at: datetime, usable: bool
) -> None:
    pki = certificates.generate(WHERE.dns_names, NOW)
    assert certificates.usable(pki, names, at) is usable


def test_names_longer_than_a_common_name_may_be_are_certified() -> None:
    long = SelfManagedCertificate.for_service("n" * 63, "tls", "almanac", "s" * 63)
    assert certificates.usable(certificates.generate(long.dns_names, NOW), long.dns_names, NOW)


def test_a_certificate_from_another_ca_or_garbage_is_not_usable() -> None:
    one = certificates.generate(WHERE.dns_names, NOW)
    other = certificates.generate(WHERE.dns_names, NOW)
    assert not certificates.usable(
        certificates.WebhookPki(other.ca, one.cert, one.key), WHERE.dns_names, NOW
    )
    assert not certificates.usable(certificates.WebhookPki(b"x", b"y", b"z"), WHERE.dns_names, NOW)
    assert certificates.WebhookPki.from_secret_data({"ca.crt": "!!"}) is None
    assert certificates.WebhookPki.from_secret_data(one.secret_data()) == one


def test_the_first_replica_makes_the_certificate_and_the_next_ones_reuse_it() -> None:
    kube = FakeKube()
    first = asyncio.run(provision(kube, WHERE))  # type: ignore[arg-type]
    second = asyncio.run(provision(kube, WHERE))  # type: ignore[arg-type]
    assert first == second
    assert kube.writes == [("put", "secrets", "tls")]
    assert kube.ca_bundles == {"almanac": first.ca}


def test_a_certificate_for_other_names_is_renewed() -> None:
    kube = FakeKube()
    asyncio.run(
        provision(kube, SelfManagedCertificate("almanac-system", "tls", "almanac", ("old",)))
    )  # type: ignore[arg-type]
    renewed = asyncio.run(provision(kube, WHERE))  # type: ignore[arg-type]
    assert certificates.usable(renewed, WHERE.dns_names, datetime.now(UTC))
    assert kube.ca_bundles == {"almanac": renewed.ca}


def test_a_replica_that_loses_the_race_serves_the_winners_certificate() -> None:
    kube = FakeKube()
    winner = certificates.generate(WHERE.dns_names, datetime.now(UTC))
    real_put = kube.put_secret

    async def racing_put(namespace: str, name: str, data: dict[str, str], found: Any) -> bool:
        await real_put(namespace, name, winner.secret_data(), None)  # the other replica
        return await real_put(namespace, name, data, found)

    kube.put_secret = racing_put  # type: ignore[method-assign]
    assert asyncio.run(provision(kube, WHERE)) == winner  # type: ignore[arg-type]


# --- one real exchange over HTTPS ----------------------------------------------------------


def test_the_server_answers_an_admission_review_over_tls_with_its_certificate() -> None:
    pki = certificates.generate(("localhost",), datetime.now(UTC))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def exchange() -> tuple[dict[str, Any], int]:
        kube = FakeKube()
        server = WebhookServer(Admission(kube, Settings(), OPERATOR), port, tls_context(None, pki))  # type: ignore[arg-type]
        await server.start()
        try:
            trust = ssl.create_default_context(cadata=pki.ca.decode())
            async with aiohttp.ClientSession() as session:
                url = f"https://localhost:{port}/validate-scheduledjobrun"
                review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
                call = request("CREATE", "mallory", run())
                async with session.post(url, json={**review, "request": call}, ssl=trust) as r:
                    answer = await r.json()
                async with session.post(url, data=b"not json", ssl=trust) as r:
                    status = r.status
            return answer, status
        finally:
            await server.stop()

    answer, bad_request = asyncio.run(exchange())
    assert answer["response"]["uid"] == "u-1"
    assert answer["response"]["allowed"] is False
    assert answer["response"]["status"]["code"] == 403
    assert bad_request == 400


def test_a_renewed_certificate_in_the_folder_is_loaded_without_a_restart(tmp_path: Any) -> None:
    def write(pki: certificates.WebhookPki) -> None:
        (tmp_path / "tls.crt").write_bytes(pki.cert)
        (tmp_path / "tls.key").write_bytes(pki.key)

    write(certificates.generate(("localhost",), NOW))
    server = WebhookServer(
        Admission(FakeKube(), Settings(), OPERATOR),  # type: ignore[arg-type]
        0,
        tls_context(str(tmp_path), None),
        cert_dir=str(tmp_path),
    )
    assert not server.reload_if_changed()
    (tmp_path / "tls.crt").write_bytes(b"half-written")
    assert not server.reload_if_changed()  # kept the old one, retries at the next check
    write(certificates.generate(("localhost",), NOW))
    assert server.reload_if_changed()
    assert not server.reload_if_changed()
