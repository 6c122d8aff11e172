"""Who may take a Lease: table tests of the election rule."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from almanac.controller.leader import may_take

NOW = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)


def lease(holder: str | None, renewed_ago: float | None, duration: int = 15) -> dict[str, Any]:
    spec: dict[str, Any] = {"holderIdentity": holder, "leaseDurationSeconds": duration}
    if renewed_ago is not None:
        spec["renewTime"] = (NOW - timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"spec": spec}


@pytest.mark.parametrize(
    ("current", "unchanged_for", "allowed"),
    [
        (None, 0, True),
        (lease(None, None), 0, True),
        (lease("me", 1), 0, True),
        (lease("other", 5), 5, False),
        (lease("other", 15), 15, False),
        (lease("other", 16), 16, True),
        (lease("other", 3600), 0, False),
        (lease("other", None), 0, False),
    ],
    ids=[
        "no Lease yet: take it",
        "released Lease: take it",
        "our own Lease: renew it",
        "another holder seen unchanged for 5s: wait",
        "another holder seen unchanged exactly for its 15s: wait",
        "another holder seen unchanged for 16s: take over",
        "renewed an hour ago by its clock, just seen: wait a lease on ours",
        "another holder that never renewed, just seen: wait a lease on ours",
    ],
)
def test_may_take(current: dict[str, Any] | None, unchanged_for: float, allowed: bool) -> None:
    assert may_take(current, "me", unchanged_for) is allowed


class LeaseStore:
    """The three Lease calls of the gateway, on one in-memory Lease."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.lease

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> Any:
        from almanac.kube import Created

        self.lease = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
        return Created(self.lease)

    async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> Any:
        self.lease = body
        return body


@pytest.mark.parametrize(
    ("paused", "another_holder", "leader"),
    [
        (0.0, False, True),  # renewed just now
        (9.0, False, True),  # within renewDeadline (10 s) of the renewal sent
        (10.5, False, False),  # frozen past it: fenced before any write
        (0.0, True, False),  # saw another holder: fenced at once
    ],
)
def test_the_fence_closes_when_the_renewal_is_too_old_or_another_holds_the_lease(
    monkeypatch: pytest.MonkeyPatch, paused: float, another_holder: bool, leader: bool
) -> None:
    import asyncio

    from almanac.controller import leader as module

    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    leases = LeaseStore()
    elector = module.LeaderElector(leases, "ns", "almanac", "me", clock=lambda: NOW)  # type: ignore[arg-type]
    assert not elector.is_leader()
    assert asyncio.run(elector.try_once())
    clock[0] += paused
    if another_holder:
        assert leases.lease is not None
        leases.lease["spec"] = {**leases.lease["spec"], "holderIdentity": "other"}
        monkeypatch.setattr(module.asyncio, "sleep", _no_sleep)
        asyncio.run(elector.hold())  # returns: leadership lost
    assert elector.is_leader() is leader


async def _no_sleep(seconds: float) -> None:
    return None


def test_a_resigned_leader_is_fenced_gives_the_lease_up_and_never_takes_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A clean stop: the follower may take the Lease at once (its next retry), and the
    stopping replica's renewal loop, still running while kopf shuts down, must not
    take it back."""
    import asyncio

    from almanac.controller import leader as module

    leases = LeaseStore()
    elector = module.LeaderElector(leases, "ns", "almanac", "me", clock=lambda: NOW)  # type: ignore[arg-type]
    follower = module.LeaderElector(leases, "ns", "almanac", "other", clock=lambda: NOW)  # type: ignore[arg-type]
    assert asyncio.run(elector.try_once())
    assert not asyncio.run(follower.try_once())
    asyncio.run(elector.resign())
    assert not elector.is_leader()
    assert leases.lease is not None and leases.lease["spec"]["holderIdentity"] is None
    monkeypatch.setattr(module.asyncio, "sleep", _no_sleep)
    asyncio.run(elector.hold())  # returns at once, without renewing
    assert not asyncio.run(elector.try_once())
    assert asyncio.run(follower.try_once())


@pytest.mark.parametrize(
    ("kopf_ends", "code", "holder"),
    [
        ("asked", 0, None),  # SIGTERM: a clean stop, the Lease given up
        ("crashed", 1, None),  # kopf's main loop died: exit non-zero, Lease given up
    ],
)
def test_the_process_never_lingers_holding_the_lease_while_not_serving(
    monkeypatch: pytest.MonkeyPatch, kopf_ends: str, code: int, holder: str | None
) -> None:
    """runner._serve with kopf replaced by a stand-in that ends as asked or on its own."""
    import asyncio

    from almanac.controller import handlers, runner
    from almanac.controller.settings import Settings

    leases = LeaseStore()

    class FakeKube:
        get_lease, create_lease = leases.get_lease, leases.create_lease
        replace_lease = leases.replace_lease

        @classmethod
        async def connect(cls) -> FakeKube:
            return cls()

        async def close(self) -> None:
            return None

    async def operator(stop_flag: asyncio.Event, **_: Any) -> None:
        assert leases.lease is not None and leases.lease["spec"]["holderIdentity"] == "me"
        if kopf_ends == "asked":
            assert handlers.on_serving is not None
            handlers.on_serving()  # as kopf's startup would; then a SIGTERM arrives
            asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)
            await stop_flag.wait()
            assert handlers.resign is not None
            await handlers.resign()  # as kopf's cleanup would
        # "crashed": returns at once, without being asked and without cleanup

    monkeypatch.setattr(runner, "Kube", FakeKube)
    monkeypatch.setattr(runner.kopf, "operator", operator)
    monkeypatch.setattr(runner, "identity", lambda: "me")
    election = runner.Election("ns", "almanac")
    assert asyncio.run(runner._serve(Settings(), None, election)) == code
    assert leases.lease is not None
    assert leases.lease["spec"]["holderIdentity"] == holder


# --- the fence is asked when a write is sent, not only when it is asked for --------------


def test_a_write_that_waited_for_its_turn_past_the_lost_lease_is_not_sent() -> None:
    """design.md: "a deposed leader must not write". A write asked for while the Lease
    was held, which then waited for one of the IN_FLIGHT turns (a burst of fires: up to
    32 requests of 20 s each ahead of it) or behind a 429's Retry-After, and whose turn
    came after the Lease was lost, is refused (NotLeader) rather than sent."""
    import asyncio

    from aiohttp import web
    from kubernetes_asyncio import client

    from almanac import kube

    async def scenario() -> tuple[list[str], list[str]]:
        sent: list[str] = []
        busy = [0]

        async def answer(request: web.Request) -> web.Response:
            sent.append(f"{request.method} {request.path}")
            if busy[0]:  # the first write: "too many requests, come back in a moment"
                busy[0] -= 1
                return web.json_response({"message": "busy"}, status=429)
            return web.json_response({"metadata": {"name": "x"}})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        api = kube._ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}"))
        k = kube.Kube(api)
        leader = [True]
        k.fence = lambda: leader[0]
        outcomes: list[str] = []

        async def write(what: str, request: Any) -> None:
            try:
                await request
                outcomes.append(f"{what}: sent")
            except kube.NotLeader:
                outcomes.append(f"{what}: refused")

        try:
            # 1. waiting for a turn while the Lease is lost
            k._turns = asyncio.Semaphore(1)
            await k._turns.acquire()  # the turns are all taken by requests ahead
            run = {"metadata": {"name": "r"}}
            waiting = asyncio.create_task(write("queued", k.create("scheduledjobruns", "ns", run)))
            await asyncio.sleep(0.05)
            leader[0] = False
            k._turns.release()
            await waiting
            # 2. the Lease lost while a 429 is waited out
            k._turns = asyncio.Semaphore(kube.IN_FLIGHT)
            leader[0], busy[0] = True, 1
            sent.clear()
            retrying = asyncio.create_task(
                write("retried", k.create("scheduledjobruns", "ns", run))
            )
            while not sent:
                await asyncio.sleep(0.01)
            leader[0] = False
            await retrying
            return outcomes, sent
        finally:
            await api.close()
            await runner.cleanup()

    outcomes, sent = asyncio.run(scenario())
    assert outcomes == ["queued: refused", "retried: refused"]  # the retry was not sent
    assert sent == ["POST /apis/almanac.dev/v1alpha1/namespaces/ns/scheduledjobruns"]  # 429


# --- clocks that differ between replicas --------------------------------------------------


@pytest.mark.parametrize(
    "standby_ahead",
    [8.0, 30.0],
    ids=["a few seconds: before the frozen leader's fence closes", "more than a lease"],
)
def test_a_standby_whose_clock_runs_ahead_waits_a_full_lease_on_its_own_clock(
    monkeypatch: pytest.MonkeyPatch, standby_ahead: float
) -> None:
    """renewTime is written by the leader's clock. A standby that compared it with its
    own wall clock would take over `standby_ahead` seconds early: with 8 s while the
    frozen leader's fence (renewDeadline, 10 s) is still open, so both would write; with
    more than the lease, from a leader that is renewing. As client-go, the standby
    counts the lease duration on its own monotonic clock from when it saw the Lease
    last change."""
    import asyncio

    from almanac.controller import leader as module

    elapsed = [1000.0]  # the same real time for both, on each one's monotonic clock
    monkeypatch.setattr(module.time, "monotonic", lambda: elapsed[0])
    leases = LeaseStore()
    leader = module.LeaderElector(leases, "ns", "almanac", "me", clock=lambda: NOW)  # type: ignore[arg-type]
    standby = module.LeaderElector(
        leases,  # type: ignore[arg-type]
        "ns",
        "almanac",
        "other",
        clock=lambda: NOW + timedelta(seconds=standby_ahead + elapsed[0] - 1000.0),
    )
    assert asyncio.run(leader.try_once())  # renewed at NOW by the leader's clock
    took = []  # the standby retries every 2 s while the leader is frozen
    for _ in range(9):
        elapsed[0] += 2.0
        took.append(asyncio.run(standby.try_once()))
        assert not (took[-1] and leader.is_leader()), f"two leaders after {len(took) * 2} s"
    assert took.index(True) * 2 + 2 > 15  # a full lease after the last renewal it saw


# --- a renewal that loses a write race, with nobody else holding the Lease ----------------


def test_a_renewal_that_meets_a_conflict_tries_again_and_keeps_leading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Someone edits the Lease by hand (`kubectl annotate lease ...`) between the
    leader's GET and PUT: the PUT answers 409 Conflict. Nobody else holds the Lease, so
    this is an attempt that failed, tried again within renewDeadline (as client-go
    does), not "held by another replica": the leader must not step down and exit."""
    import asyncio

    from almanac.controller import leader as module

    class EditedOnce(LeaseStore):
        def __init__(self) -> None:
            super().__init__()
            self.puts = 0

        async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> Any:
            self.puts += 1
            if self.puts == 1:  # the hand edit won the race: 409, our Lease unchanged
                return None
            elector.resigned = True  # ends hold() at its next turn, still leading
            return await super().replace_lease(namespace, name, body)

    monkeypatch.setattr(module.asyncio, "sleep", _no_sleep)
    leases = EditedOnce()
    elector = module.LeaderElector(leases, "ns", "almanac", "me", clock=lambda: NOW)  # type: ignore[arg-type]
    assert asyncio.run(elector.try_once())  # created: no PUT yet
    asyncio.run(elector.hold())
    assert leases.puts == 2  # the conflict, then the renewal tried again
    assert elector.is_leader()


# --- one failed renewal while the wall clock steps --------------------------------------


def test_one_failed_renewal_while_the_wall_clock_steps_forward_does_not_end_leadership(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One renewal answered 500, and meanwhile NTP steps the wall clock 30 s forward (a
    VM resumed): the renewDeadline (10 s) is counted on the monotonic clock, as the
    fence is, so the next attempt 2 s later renews and the leader keeps leading."""
    import asyncio

    from almanac.controller import leader as module

    wall = [NOW]

    class FailsOnce(LeaseStore):
        def __init__(self) -> None:
            super().__init__()
            self.gets = 0

        async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
            self.gets += 1
            if self.gets == 2:  # the first renewal
                wall[0] += timedelta(seconds=30)
                raise RuntimeError("500 Internal Server Error")
            if self.gets == 3:
                elector.resigned = True  # ends hold() at its next turn, still leading
            return await super().get_lease(namespace, name)

    monkeypatch.setattr(module.asyncio, "sleep", _no_sleep)
    leases = FailsOnce()
    elector = module.LeaderElector(leases, "ns", "almanac", "me", clock=lambda: wall[0])  # type: ignore[arg-type]
    assert asyncio.run(elector.try_once())
    asyncio.run(elector.hold())
    assert leases.gets == 3  # the failed renewal, then one that renewed
    assert elector.is_leader()
