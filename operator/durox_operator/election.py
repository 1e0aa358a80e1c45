"""Leader election on a `coordination.k8s.io/v1` Lease: of the replicas, one reconciles.

Every replica runs the same loop every `retry` seconds: read the Lease; if nobody holds it, or
its holder has not renewed it for `lease_seconds` as measured on this replica's own monotonic
clock (never by comparing the holder's timestamps with ours, so skewed clocks do not matter),
take it; if we hold it, renew it. Each write carries the resourceVersion that was read, so
when two replicas try at once the apiserver accepts one and answers 409 to the other.

A leader that has not renewed for `renew_deadline` (two thirds of the lease) stops leading
before anyone else may take over, and one that sees another holder stops at once. A leader
that shuts down releases the Lease (no holder), so the next one takes it at its next try
instead of waiting the lease out.

Why not the Kubernetes client's `kubernetes.leaderelection`: it runs a blocking loop on its own
threads, has no way to stop it or to release the lease on shutdown, and measures expiry with
the wall clock. This elector is driven by the operator's event loop, goes through `Kube` like
every other call, and is tested with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from durox_operator.kube import Kube, KubeError

logger = logging.getLogger(__name__)


def micro_now() -> str:
    """A MicroTime, the format of a Lease's acquireTime and renewTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Timing:
    lease_seconds: float = 15.0

    @property
    def renew_deadline(self) -> float:
        return self.lease_seconds * 2 / 3

    @property
    def retry(self) -> float:
        return self.lease_seconds / 7.5


class LeaseElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        clock: Callable[[], float] = time.monotonic,
        stamp: Callable[[], str] = micro_now,
    ) -> None:
        self._kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.timing, self._clock, self._stamp = timing, clock, stamp
        self.leading = False
        self.holder: str | None = None  # as last read
        self._record: tuple[Any, ...] | None = None  # what the Lease said when last read
        self._record_since = 0.0  # our clock when that record first appeared
        self._renewed_at = 0.0

    def try_acquire_or_renew(self) -> bool:
        """One round: True when we hold the Lease afterwards. Raises KubeError on a failed
        read or an unexpected answer; a lost race (409) is just False."""
        lease = self._kube.get("Lease", self.namespace, self.name)
        now = self._clock()
        if lease is None:
            return self._write(None, now)
        spec = lease.get("spec") or {}
        self.holder = spec.get("holderIdentity") or None
        record = (
            self.holder,
            spec.get("renewTime"),
            spec.get("leaseDurationSeconds"),
            spec.get("leaseTransitions"),
        )
        if record != self._record:
            self._record, self._record_since = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_seconds)
        if self.holder not in (None, self.identity) and now < self._record_since + duration:
            return False
        return self._write(lease, now)

    def _write(self, lease: dict[str, Any] | None, now: float) -> bool:
        stamp = self._stamp()
        spec = dict((lease or {}).get("spec") or {})
        ours = spec.get("holderIdentity") == self.identity
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, round(self.timing.lease_seconds)),
            renewTime=stamp,
        )
        if not ours:
            spec["acquireTime"] = stamp
            if lease is not None:
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        try:
            if lease is None:
                self._kube.create(body)
            else:
                body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
                self._kube.replace(body)
        except KubeError as exc:
            if exc.status == 409:
                return False  # another replica wrote first; read again next round
            raise
        self.holder, self._renewed_at = self.identity, now
        return True

    def step(self) -> bool | None:
        """One round and its verdict: True when we just became leader, False when we just
        stopped, None when nothing changed."""
        try:
            held = self.try_acquire_or_renew()
        except KubeError as exc:
            logger.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            held = False
        if held and not self.leading:
            self.leading = True
            logger.warning("%s is now the leader (lease %s/%s)", self.identity, self.namespace,
                           self.name)  # fmt: skip
            return True
        if self.leading and not held:
            lost = self.holder not in (None, self.identity)
            if lost or self._clock() - self._renewed_at > self.timing.renew_deadline:
                self.leading = False
                logger.warning("%s is no longer the leader (holder: %s)", self.identity,
                               self.holder)  # fmt: skip
                return False
        return None

    async def run(self, changed: Callable[[bool], None]) -> None:
        """Elect forever; `changed(True)` on becoming leader, `changed(False)` on stopping."""
        while True:
            verdict = await asyncio.to_thread(self.step)
            if verdict is not None:
                changed(verdict)
            await asyncio.sleep(self.timing.retry)

    def release(self) -> None:
        """Give the Lease up (on shutdown) so that a follower takes over at its next round."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = self._kube.get("Lease", self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
            self._kube.replace({**lease, "spec": spec})
            logger.warning("%s released the lease %s/%s", self.identity, self.namespace, self.name)
        except KubeError as exc:
            logger.warning("releasing lease %s/%s failed: %s", self.namespace, self.name, exc)
