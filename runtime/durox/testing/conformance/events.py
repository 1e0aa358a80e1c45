"""Client messages (`enqueue_event`: external events, cancel requests): accepted only for an
instance the store knows.

A client raising an event to an id that names nothing must hear so at once: a worker would
otherwise fetch the event, find no execution and drop it without a word. "Knows" means an
instance row (whatever its status) or a client start still queued, so an event raised between
`start_orchestration` and the first turn waits for that turn and is delivered in it.
"""

from __future__ import annotations

from durox.core import events as ev
from durox.testing.support import Harness, S, first_turn


async def test_an_event_for_an_unknown_instance_is_refused_and_nothing_is_queued(
    store: Harness,
) -> None:
    assert await store.p.enqueue_event(ev.ExternalEvent("nobody", "go", 1)) is False
    assert await store.fetch() is None
    depths = await store.p.queue_depths()
    assert (depths.orchestrator_ready, depths.orchestrator_delayed) == (0, 0)


async def test_an_event_before_the_first_turn_is_fetched_with_the_start_after_it(
    store: Harness,
) -> None:
    await store.start("i1", "Flow", "in")
    assert await store.p.enqueue_event(ev.ExternalEvent("i1", "go", {"n": 1})) is True
    item = await store.must_fetch()
    assert item.instance_id == "i1"
    assert item.messages == [
        ev.StartOrchestration("i1", "Flow", None, "in"),
        ev.ExternalEvent("i1", "go", {"n": 1}),
    ]


async def test_an_event_raised_while_the_first_turn_runs_waits_for_the_next_one(
    store: Harness,
) -> None:
    await store.start("i1")
    first = await store.must_fetch()  # the first turn is running: no instance row yet
    assert await store.p.enqueue_event(ev.ExternalEvent("i1", "go", 2)) is True
    await store.p.ack_orchestration_item(first.lock_token, first_turn("i1"))
    second = await store.must_fetch()
    assert second.messages == [ev.ExternalEvent("i1", "go", 2)]


async def test_an_event_for_a_running_or_ended_instance_is_queued(store: Harness) -> None:
    await store.begin("running")
    await store.begin("ended", status=S.COMPLETED)
    for instance in ("running", "ended"):
        assert await store.p.enqueue_event(ev.ExternalEvent(instance, "go", None)) is True
    fetched = {(await store.must_fetch()).instance_id, (await store.must_fetch()).instance_id}
    assert fetched == {"running", "ended"}


async def test_an_event_for_a_deleted_instance_is_refused(store: Harness) -> None:
    await store.begin("gone", status=S.COMPLETED)
    assert await store.p.delete_instance("gone") == 1
    assert await store.p.enqueue_event(ev.ExternalEvent("gone", "go", None)) is False
    assert await store.fetch() is None


async def test_a_cancel_request_is_queued_by_kind_only_for_a_known_instance(
    store: Harness,
) -> None:
    # Client.cancel_instance goes the same way: refused for an unknown id, kept for a start
    # that has not run yet, and stored as a CancelRequest (its kind column included, which
    # the fetch reads), not as an event.
    assert await store.p.enqueue_event(ev.CancelRequest("nobody", "stop")) is False
    assert await store.fetch() is None
    await store.start("i1", "Flow", "in")
    assert await store.p.enqueue_event(ev.CancelRequest("i1", "stop")) is True
    item = await store.must_fetch()
    assert item.messages == [
        ev.StartOrchestration("i1", "Flow", None, "in"),
        ev.CancelRequest("i1", "stop"),
    ]
