"""When a request the API server refused is tried again (kube.retry_delay), as client-go does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from almanac.kube import TOO_MANY_REQUESTS_RETRIES, retry_delay


def refused(status: int, retry_after: str | None = None) -> ApiException:
    error = ApiException(status=status, reason="refused")
    error.headers = {} if retry_after is None else {"Retry-After": retry_after}
    return error


CASES = [
    # (id, status, Retry-After header, attempt, seconds to wait or None)
    ("429 waits the seconds the server asks", 429, "2", 0, 2.0),
    ("429 without Retry-After waits a second", 429, None, 0, 1.0),
    ("429 with an unreadable Retry-After waits a second", 429, "soon", 3, 1.0),
    ("429 asking for a minute waits ten seconds at most", 429, "60", 0, 10.0),
    ("429 asking for zero still yields a moment", 429, "0", 0, 0.1),
    ("429 after the last retry is raised", 429, "1", TOO_MANY_REQUESTS_RETRIES, None),
    ("409 Conflict is an answer, not a busy server", 409, None, 0, None),
    ("500 is raised to the caller", 500, "1", 0, None),
    ("404 is raised to the caller", 404, None, 0, None),
]


@pytest.mark.parametrize(
    ("status", "header", "attempt", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_retry_delay(status: int, header: str | None, attempt: int, expected: float | None) -> None:
    assert retry_delay(refused(status, header), attempt) == expected


# --- the environment lookups of every request ----------------------------------------------


@pytest.mark.parametrize(
    ("environ", "netrc", "routes"),
    [
        ({}, False, False),
        ({"HTTPS_PROXY": "http://proxy:3128"}, False, True),
        ({"https_proxy": "http://proxy:3128"}, False, True),
        ({"NO_PROXY": "*"}, False, False),
        ({"HTTPS_PROXY": ""}, False, False),
        ({}, True, True),
    ],
)
def test_the_environment_routes_requests_only_with_a_proxy_or_a_netrc(
    tmp_path: Path, environ: dict[str, str], netrc: bool, routes: bool
) -> None:
    from almanac.kube import environment_routes_requests

    if netrc:
        (tmp_path / ".netrc").write_text("machine example.com login a password b\n")
    assert environment_routes_requests(environ, str(tmp_path)) is routes


def test_the_client_skips_the_lookups_where_they_could_only_answer_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kubernetes_asyncio import client

    from almanac.kube import PROXY_VARIABLES, _ApiClient

    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.upper(), raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    async def sessions() -> tuple[bool, bool]:
        plain = _ApiClient(client.Configuration())
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
        proxied = _ApiClient(client.Configuration())
        try:
            return (
                plain.rest_client.pool_manager.trust_env,
                proxied.rest_client.pool_manager.trust_env,
            )
        finally:
            await plain.close()
            await proxied.close()

    assert asyncio.run(sessions()) == (False, True)


# --- what the request timeout counts ---------------------------------------------------------


def test_a_request_waiting_for_a_free_connection_is_not_timed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four requests through a client of one connection to a server that takes 0.3 s
    each: the last waits 0.9 s for the connection, longer than the timeout (0.5 s), and
    still gets its answer; a server that takes longer than the timeout to answer fails."""
    import aiohttp
    from aiohttp import web
    from kubernetes_asyncio import client

    from almanac import kube

    monkeypatch.setattr(kube, "_TIMEOUT", aiohttp.ClientTimeout(sock_connect=0.5, sock_read=0.5))

    async def scenario() -> tuple[list[object], str | None]:
        async def answer(request: web.Request) -> web.Response:
            await asyncio.sleep(float(request.query.get("delay", "0.3")))
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_get("/x", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
        configuration.connection_pool_maxsize = 1
        api = kube._ApiClient(configuration)
        k = kube.Kube(api)
        try:
            answers = await asyncio.gather(*(k._json("GET", "/x") for _ in range(4)))
            try:
                await k._json("GET", "/x", query=[("delay", "0.8")])
                slow = None
            except Exception as error:
                slow = kube.transient_failure(error)
            return list(answers), slow
        finally:
            await api.close()
            await runner.cleanup()

    answers, slow = asyncio.run(scenario())
    assert answers == [{"ok": True}] * 4
    assert slow == f"no answer from the API server within {kube.REQUEST_TIMEOUT:g} s"


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (TimeoutError(), "no answer from the API server within 20 s"),
        (ApiException(status=503, reason="Service Unavailable"), "answered 503"),
        (ApiException(status=429, reason="Too Many Requests"), "answered 429"),
        (ApiException(status=409, reason="Conflict"), None),
        (ApiException(status=422, reason="Invalid"), None),
        (KeyError("spec"), None),
    ],
)
def test_only_the_api_servers_state_is_a_transient_failure(
    error: BaseException, says: str | None
) -> None:
    from almanac.kube import transient_failure

    found = transient_failure(error)
    assert (found is None) if says is None else (says in (found or ""))
