"""The Lease elector against a fake apiserver that enforces resourceVersion preconditions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from durox_operator.election import LeaseElector, Timing
from durox_operator.kube import Kube, KubeError
from durox_operator.model import Obj


class LeaseApi(Kube):
    """One namespace of Leases: create refuses a duplicate, replace a stale resourceVersion."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.down = False

    def _stored(self, obj: Obj) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(dict(obj))
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.leases[obj["metadata"]["name"]] = stored
        return copy.deepcopy(stored)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if self.down:
            raise KubeError("connection refused", None)
        found = self.leases.get(name)
        return copy.deepcopy(found) if found is not None else None

    def create(self, obj: Obj) -> dict[str, Any]:
        if obj["metadata"]["name"] in self.leases:
            raise KubeError("HTTP 409: AlreadyExists", 409)
        return self._stored(obj)

    def replace(self, obj: Obj) -> dict[str, Any]:
        current = self.leases[obj["metadata"]["name"]]
        if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise KubeError("HTTP 409: Conflict", 409)
        return self._stored(obj)

    def holder(self) -> str | None:
        return self.leases["durox"]["spec"].get("holderIdentity")  # type: ignore[no-any-return]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _elector(api: LeaseApi, identity: str, clock: Clock) -> LeaseElector:
    return LeaseElector(api, "ops", "durox", identity, Timing(15.0), clock, lambda: f"t{clock.now}")


@pytest.fixture
def api() -> LeaseApi:
    return LeaseApi()


def test_timing_follows_client_go_proportions() -> None:
    assert (Timing(15).renew_deadline, Timing(15).retry) == (10.0, 2.0)


def test_the_first_replica_creates_the_lease_and_leads(api: LeaseApi) -> None:
    clock = Clock()
    a, b = _elector(api, "a", clock), _elector(api, "b", clock)
    assert a.step() is True and a.leading
    assert b.step() is None and not b.leading
    lease = api.leases["durox"]["spec"]
    assert (lease["holderIdentity"], lease["leaseDurationSeconds"]) == ("a", 15)
    assert lease["acquireTime"] == lease["renewTime"] == "t100.0"


def test_a_renewing_leader_keeps_the_lease(api: LeaseApi) -> None:
    clock = Clock()
    a, b = _elector(api, "a", clock), _elector(api, "b", clock)
    a.step()
    for _ in range(20):
        clock.now += 2
        assert a.step() is None
        assert b.step() is None
    assert api.holder() == "a" and a.leading and not b.leading
    assert api.leases["durox"]["spec"]["acquireTime"] == "t100.0"  # renewed, not reacquired


def test_a_silent_leader_is_replaced_after_the_lease_duration(api: LeaseApi) -> None:
    clock = Clock()
    a, b = _elector(api, "a", clock), _elector(api, "b", clock)
    a.step()
    b.step()  # b sees a's record at t=100 by its own clock
    clock.now += 14.9
    assert b.step() is None  # not expired yet
    clock.now += 0.2
    assert b.step() is True
    assert api.holder() == "b"
    assert api.leases["durox"]["spec"]["leaseTransitions"] == 1
    # the old leader comes back: it sees another holder and stops at once
    assert a.step() is False and not a.leading


def test_expiry_is_measured_on_the_followers_clock_not_the_holders_stamps(api: LeaseApi) -> None:
    clock = Clock()
    a = _elector(api, "a", clock)
    a.step()
    api.leases["durox"]["spec"]["renewTime"] = "1970-01-01T00:00:00.000000Z"  # a skewed holder
    b = _elector(api, "b", clock)
    assert b.step() is None  # first sight starts b's count, whatever the stamp says


def test_a_leader_cut_off_from_the_api_stops_before_the_lease_can_expire(api: LeaseApi) -> None:
    clock = Clock()
    a = _elector(api, "a", clock)
    a.step()
    api.down = True
    clock.now += 9
    assert a.step() is None and a.leading  # within the renew deadline
    clock.now += 2
    assert a.step() is False and not a.leading  # 11 s > 10 s: stop, 4 s before anyone may take it


def test_two_replicas_racing_for_a_free_lease_get_one_leader(api: LeaseApi) -> None:
    clock = Clock()
    a, b = _elector(api, "a", clock), _elector(api, "b", clock)
    a.step()
    a.release()
    # both read the released lease, then both write: the second write carries a stale version
    lease = api.get("Lease", "ops", "durox")
    assert lease is not None
    assert a._write(lease, clock.now) is True
    assert b._write(lease, clock.now) is False
    assert api.holder() == "a"


def test_release_hands_over_without_waiting_out_the_lease(api: LeaseApi) -> None:
    clock = Clock()
    a, b = _elector(api, "a", clock), _elector(api, "b", clock)
    a.step()
    b.step()
    a.release()
    assert not a.leading and api.holder() is None
    clock.now += 2
    assert b.step() is True and api.holder() == "b"
    a.release()  # no longer leading: touches nothing
    assert api.holder() == "b"


def test_release_leaves_a_lease_someone_else_took(api: LeaseApi) -> None:
    clock = Clock()
    a = _elector(api, "a", clock)
    a.step()
    api.leases["durox"]["spec"]["holderIdentity"] = "c"
    a.release()
    assert api.holder() == "c"
