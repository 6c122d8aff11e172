"""Leader election on a coordination.k8s.io Lease, so two replicas never both act.

kopf's peering pauses equal peers rather than electing one (NOTES-kopf.md), so Almanac
elects the way Kubernetes controllers do (client-go's leaderelection): the replica that
holds the Lease runs the operator; the others wait. The holder renews every
``retry_period``; if it cannot renew within ``renew_deadline`` it stops acting and
exits (its Deployment restarts it as a follower), and a follower takes the Lease once
``lease_duration`` has passed on its own monotonic clock since it saw the Lease last
change (as client-go: renewTime is written by the holder's clock, which may differ from
ours by seconds). Writes carry the Lease's resourceVersion, so of two replicas racing
for it exactly one wins.

Run names derived from job and instant remain the guard of last resort: even two
leaders at once could not create one fire twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from almanac import kube as k
from almanac.kube import Body, Kube

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """client-go's defaults: a dead leader is replaced within about 15 seconds."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


def identity() -> str:
    """Who we are in the Lease: the Pod's name in a cluster, else host and pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def may_take(lease: Body | None, me: str, unchanged_for: float) -> bool:
    """Whether `me` may write itself as the holder of this Lease now, when we have seen
    it unchanged for `unchanged_for` seconds. Not the holder's renewTime against our
    wall clock: a clock a few seconds ahead would take over from a leader whose fence
    is still open (and one more than a lease ahead, from a leader that renews)."""
    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder or holder == me:
        return True
    return unchanged_for > (spec.get("leaseDurationSeconds") or 0)


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        me: str,
        timing: Timing = Timing(),
        clock: Callable[[], datetime] = k.now,
    ) -> None:
        self.kube, self.namespace, self.name, self.me = kube, namespace, name, me
        self.timing, self.clock = timing, clock
        self._valid_until = 0.0  # time.monotonic() until which we surely hold the Lease
        self._lost = False
        self.resigned = False
        self._seen: Body | None = None  # the Lease's spec as we last saw it
        self._seen_since = 0.0  # time.monotonic() when we first saw it so

    def is_leader(self) -> bool:
        """The fence every write checks: we hold the Lease, renewed less than
        ``renew_deadline`` ago (counted from when the renewal was *sent*, on the
        monotonic clock, which a frozen process does not stop). A replica paused past
        that, or one that saw another holder, writes nothing more."""
        return not self._lost and time.monotonic() < self._valid_until

    async def try_once(self) -> bool:
        """One attempt to take or renew the Lease; True when we hold it afterwards."""
        if self.resigned:  # never take the Lease back after giving it up
            return False
        sent = time.monotonic()
        held = await self._try_once()
        if held:
            self._valid_until = sent + self.timing.renew_deadline
        return held

    async def _try_once(self) -> bool:
        lease = await self.kube.get_lease(self.namespace, self.name)
        now = self.clock()
        spec = (lease or {}).get("spec") or {}
        if spec != self._seen:
            self._seen, self._seen_since = spec, time.monotonic()
        if not may_take(lease, self.me, time.monotonic() - self._seen_since):
            return False
        taking = spec.get("holderIdentity") != self.me
        new_spec: Body = {
            **spec,
            "holderIdentity": self.me,
            "leaseDurationSeconds": int(self.timing.lease_duration),
            "renewTime": _micro(now),
        }
        if taking:
            new_spec["acquireTime"] = _micro(now)
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if spec.get("holderIdentity") else 0
            )
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": new_spec,
            }
            return isinstance(await self.kube.create_lease(self.namespace, body), k.Created)
        return (
            await self.kube.replace_lease(self.namespace, self.name, {**lease, "spec": new_spec})
            is not None
        )

    async def acquire(self) -> None:
        """Waits until we hold the Lease."""
        log.info(
            "waiting for leadership: Lease %s/%s, identity %s", self.namespace, self.name, self.me
        )
        while not await self._attempt():
            await asyncio.sleep(self.timing.retry_period)
        log.info("became the leader (Lease %s/%s)", self.namespace, self.name)

    async def hold(self) -> None:
        """Renews the Lease; returns as soon as another replica holds it, or when it
        could not be renewed within the deadline (the fence closed already then)."""
        while True:
            await asyncio.sleep(self.timing.retry_period)
            if self.resigned:
                return
            while True:
                try:
                    if await self.try_once():
                        break
                    if self.resigned:
                        return
                    if (self._seen or {}).get("holderIdentity") != self.me:
                        self._lost = True
                        log.error(
                            "Lease %s/%s is held by another replica: leadership lost",
                            self.namespace,
                            self.name,
                        )
                        return
                    # Still ours, but our write lost a race (409: edited meanwhile, by
                    # hand or by kubectl; 404: deleted): try again until the deadline.
                    log.warning("Lease %s/%s changed while renewing it", self.namespace, self.name)
                except Exception as error:  # an API hiccup: try again until the deadline
                    log.warning("Lease %s/%s: %s", self.namespace, self.name, error)
                # The deadline is the fence's, on the monotonic clock: a wall clock
                # stepped by NTP must not end leadership after one failed attempt.
                if not self.is_leader():
                    self._lost = True
                    log.error(
                        "could not renew Lease %s/%s for %ss: leadership lost",
                        self.namespace,
                        self.name,
                        self.timing.renew_deadline,
                    )
                    return
                await asyncio.sleep(self.timing.retry_period)

    async def resign(self) -> None:
        """On a clean stop, first thing: close the fence, then give the Lease up, so a
        follower takes over within its retry period while this replica shuts down."""
        self._lost = self.resigned = True
        try:
            await self.release()
        except Exception as error:  # the follower then waits out the lease duration
            log.warning("Lease %s/%s not released: %s", self.namespace, self.name, error)

    async def release(self) -> None:
        """Gives the Lease up, so that a follower need not wait."""
        lease = await self.kube.get_lease(self.namespace, self.name)
        if lease and (lease.get("spec") or {}).get("holderIdentity") == self.me:
            spec = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
            await self.kube.replace_lease(self.namespace, self.name, {**lease, "spec": spec})

    async def _attempt(self) -> bool:
        try:
            return await self.try_once()
        except Exception as error:  # an API hiccup is a failed attempt, not a crash
            log.warning("Lease %s/%s: %s", self.namespace, self.name, error)
            return False


def _micro(when: datetime) -> str:
    """Leases use MicroTime: RFC 3339 with microseconds."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
