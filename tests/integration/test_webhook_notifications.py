"""Webhook notifications (issue 16, part 5): the real operator, the real control plane and
real HTTP receivers on loopback (tests/webhook_receiver.py), read back as an on-call
person would: what arrived, the run's status and its Events."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.conftest import Admission, Operator
from tests.integration.objects import scheduled_job, service
from tests.integration.test_operator import finished_run, reasons, run_now
from tests.kube import Kubectl, wait_until
from tests.webhook_receiver import WebhookReceiver

FAILING = [service("settle", exit_code=1)]
#: Plain http to loopback only: what an administrator lists for a receiver in the cluster.
ALLOW_LOOPBACK = ("--notify-allowed-hosts", "http://127.0.0.1")
SECRET_PATH = "/services/T000/B000/s3cr3tT0k3n"


@pytest.fixture
def receivers() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    with WebhookReceiver() as first, WebhookReceiver() as second:
        yield first, second


def states(k: Kubectl, run: str, field: str = "webhookNotifications") -> list[dict[str, Any]]:
    return list((k.get("sjr", run).get("status") or {}).get(field) or [])


def url_secret(k: Kubectl, name: str, url: str) -> None:
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {"url": base64.b64encode(url.encode()).decode()},
        }
    )


def test_each_webhook_gets_one_post_per_run_through_an_outage_and_a_restart(
    k: Kubectl,
    start_operator: Callable[..., Operator],
    receivers: tuple[WebhookReceiver, WebhookReceiver],
) -> None:
    """One receiver answers 503, the other is down (connection refused); the operator is
    killed while both wait for their retry; they come back, and the operator after the
    restart delivers each exactly once. A restart after that sends nothing again: the
    next POSTs are the next run's."""
    json_hook, slack_hook = receivers
    operator = start_operator(*ALLOW_LOOPBACK)
    json_hook.status = 503
    slack_hook.stop()
    url_secret(k, "chat-hook", slack_hook.url(SECRET_PATH))
    k.apply(
        scheduled_job(
            "settle",
            services=FAILING,
            notifications={
                "onFailure": True,
                "webhooks": [
                    {"url": json_hook.url("/almanac")},
                    {"urlSecretRef": {"name": "chat-hook", "key": "url"}, "format": "slack"},
                ],
            },
        )
    )
    run = finished_run(k, run_now(k, "settle")["metadata"]["name"])
    name, ns = run["metadata"]["name"], k.namespace
    assert run["status"]["phase"] == "Failed"
    waiting = wait_until(
        "both POSTs failed once and waiting for their retry",
        lambda: (
            (s := states(k, name))
            and len(s) == 2
            and all(x.get("state") == "Pending" and x.get("attempts", 0) >= 1 for x in s)
            and s
        ),
    )
    assert "answered HTTP 503" in waiting[0]["message"]
    assert f"http://127.0.0.1:{slack_hook.port}: cannot connect" in waiting[1]["message"]
    assert all("s3cr3t" not in x["message"] for x in waiting)
    assert "NotificationRetrying" in reasons(k, name)
    assert json_hook.accepted() == [] and slack_hook.received == []

    operator.kill()
    json_hook.status = 200
    slack_hook.start()
    operator.start()
    [posted] = json_hook.wait_for(1, timeout=60)
    [chat] = slack_hook.wait_for(1, timeout=60)
    sent = wait_until(
        "both recorded as Sent",
        lambda: (s := states(k, name)) and all(x.get("state") == "Sent" for x in s) and s,
    )
    assert sent[0]["message"] == f"Sent to http://127.0.0.1:{json_hook.port} (HTTP 200 OK)."
    assert sent[1]["message"] == f"Sent to http://127.0.0.1:{slack_hook.port} (HTTP 200 OK)."

    # The JSON document: the run report, the e-mail's words, an idempotency key.
    assert posted.path == "/almanac"
    document = posted.json()
    assert document["event"] == "failed"
    assert (document["namespace"], document["scheduledJob"], document["run"]) == (
        ns,
        "settle",
        name,
    )
    assert document["trigger"] == "RunNow"
    assert [(s["name"], s["phase"]) for s in document["services"]] == [("settle", "Failed")]
    assert f"kubectl -n {ns} annotate sjr {name} almanac.dev/rerun=now" in document["text"]
    assert document["id"] == f"{name}.{ns}.failed.{run['metadata']['uid']}"
    assert posted.headers["Idempotency-Key"] == document["id"]
    # The Slack message: one text, the subject in bold, the e-mail's body in a code block.
    assert chat.path == SECRET_PATH
    text = json.loads(chat.body)["text"]
    assert text.startswith(f"*[Almanac] FAILED {ns}/settle run {name} (scheduled ")
    assert f"kubectl -n {ns} describe sjr {name}" in text

    # Nothing was logged with the Secret's path.
    assert "s3cr3t" not in operator.log()
    # A restart finds them Sent and posts nothing again; the next failure is the next POST.
    operator.kill()
    operator.start()
    second = finished_run(k, run_now(k, "settle")["metadata"]["name"])
    posts = json_hook.wait_for(2, timeout=60)
    chats = slack_hook.wait_for(2, timeout=60)
    assert [p.json()["run"] for p in posts] == [name, second["metadata"]["name"]]
    assert [second["metadata"]["name"] in json.loads(c.body)["text"] for c in chats] == [
        False,
        True,
    ]
    # Every POST the receivers got: the 503s, then one accepted per run and channel.
    assert len(json_hook.accepted()) == 2 and len(slack_hook.accepted()) == 2
    assert all(r.answered == 503 for r in json_hook.received[:-2])


def test_a_webhook_the_operator_may_not_post_to_fails_with_its_reason_and_is_never_posted(
    k: Kubectl,
    start_operator: Callable[..., Operator],
    receivers: tuple[WebhookReceiver, WebhookReceiver],
) -> None:
    """The admission webhook is off here, so the API server admits what only the operator
    can judge. Off (no --notify-allowed-hosts): every webhook of the run is Failed with
    one NotificationWebhooksOff Event. On, a host not on the list (localhost is not
    127.0.0.1) and a redirect elsewhere each fail for good, naming only scheme://host."""
    receiver, redirecting = receivers
    operator = start_operator()
    hook = {"url": receiver.url(SECRET_PATH)}
    k.apply(
        scheduled_job(
            "off", services=FAILING, notifications={"onFailure": True, "webhooks": [hook]}
        )
    )
    name = finished_run(k, run_now(k, "off")["metadata"]["name"])["metadata"]["name"]
    [off] = wait_until("the state", lambda: states(k, name))
    assert off["state"] == "Failed"
    assert "webhooks are off: the operator posts to no host" in off["message"]
    wait_until("the Event", lambda: "NotificationWebhooksOff" in reasons(k, name))

    operator.stop()
    start_operator(*ALLOW_LOOPBACK)
    redirecting.status = 307
    redirecting.location = "https://elsewhere.example.net/collect?token=abc"
    k.apply(
        scheduled_job(
            "refused",
            services=FAILING,
            notifications={
                "onFailure": True,
                "webhooks": [
                    {"url": f"http://localhost:{receiver.port}{SECRET_PATH}"},
                    {"url": redirecting.url(SECRET_PATH)},
                ],
            },
        )
    )
    name = finished_run(k, run_now(k, "refused")["metadata"]["name"])["metadata"]["name"]
    refused, redirected = wait_until(
        "both Failed",
        lambda: (s := states(k, name)) and all(x.get("state") == "Failed" for x in s) and s,
    )
    assert refused["message"] == (
        f"Not sent to spec.notifications.webhooks[0]: http://localhost:{receiver.port}: "
        "localhost is not a host the operator posts to (allowed: http://127.0.0.1; set by the "
        "operator's --notify-allowed-hosts)."
    )
    assert refused.get("attempts", 0) == 0
    assert "a redirect to https://elsewhere.example.net" in redirected["message"]
    assert "token" not in redirected["message"] and "s3cr3t" not in redirected["message"]
    wait_until(
        "the Events",
        lambda: {"NotificationWebhookRefused", "NotificationFailed"} <= set(reasons(k, name)),
    )
    assert receiver.received == []
    assert len(redirecting.received) == 1  # one attempt, never retried, nothing followed


@pytest.mark.parametrize(
    ("webhook", "says"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "must be an http(s) URL"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "must be an http(s) URL"),
        (
            {"url": "https://hooks.example.com/x", "urlSecretRef": {"name": "s", "key": "url"}},
            "give exactly one of url and urlSecretRef",
        ),
        ({"format": "json"}, "give exactly one of url and urlSecretRef"),
        ({"url": "https://hooks.example.com/x", "format": "xml"}, "Unsupported value"),
        ({"urlSecretRef": {"name": "s", "key": "a/b"}}, "urlSecretRef.key"),
        ({"urlSecretRef": {"name": "Chat_Hook", "key": "url"}}, "urlSecretRef.name"),
        ({"url": "https://hooks.example.com/" + "a" * 2048}, "url: Too long"),
    ],
    ids=["not http", "a password", "both", "neither", "a format", "a key", "a name", "too long"],
)
def test_the_api_server_refuses_a_malformed_webhook_naming_the_field(
    k: Kubectl, crds: Kubectl, webhook: dict[str, Any], says: str
) -> None:
    error = k.apply_expecting_error(
        scheduled_job("hooked", notifications={"onFailure": True, "webhooks": [webhook]})
    )
    assert "spec.notifications.webhooks[0]" in error
    assert says in error


def test_the_admission_webhook_refuses_a_webhook_the_operator_would_not_post_to(
    k: Kubectl, admission: Callable[..., Admission]
) -> None:
    """The operator's own admission webhook, registered with the API server: a host off
    the list and plain http to a host listed for https only are refused at `kubectl
    apply`, naming the field; a Secret's URL (unknown until delivery) and an allowed URL
    are admitted."""
    admission("--notify-allowed-hosts", "hooks.example.com,http://127.0.0.1")

    def job(url: str) -> dict[str, Any]:
        return scheduled_job(
            "hooked", notifications={"onFailure": True, "webhooks": [{"url": url}]}
        )

    error = k.apply_expecting_error(job(f"https://evil.example.net{SECRET_PATH}"))
    assert 'admission webhook "scheduledjobs.' in error
    assert (
        "spec.notifications.webhooks[0].url: https://evil.example.net: evil.example.net is "
        "not a host the operator posts to (allowed: hooks.example.com, http://127.0.0.1"
    ) in error
    assert "s3cr3t" not in error
    error = k.apply_expecting_error(job("http://hooks.example.com/x"))
    assert "spec.notifications.webhooks[0].url: http://hooks.example.com: plain http" in error
    k.apply(job("https://hooks.example.com/x"))
    k.apply(
        scheduled_job(
            "secret",
            notifications={
                "onFailure": True,
                "webhooks": [{"urlSecretRef": {"name": "nowhere", "key": "url"}}],
            },
        )
    )
    assert k.get("sj", "hooked") is not None and k.get("sj", "secret") is not None
