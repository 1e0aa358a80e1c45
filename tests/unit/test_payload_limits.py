"""The payload size limit (`max_payload_bytes`), at every entry point: a client start and event,
an activity's result, an orchestration's output, custom status and continue_as_new input, and
the inputs an orchestration hands to activities and sub-orchestrations.

The engine's checks run on the pure core; the client's and the activity runner's on a real
runtime over the embedded store, with a small limit so the payloads stay small.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from durox import (
    ActivityContext,
    ActivityFailedError,
    ActivityRegistry,
    Client,
    ClientOptions,
    ConfigurationError,
    OrchestrationContext,
    OrchestrationRegistry,
    PayloadError,
    PayloadTooLargeError,
    RetryPolicy,
    RuntimeOptions,
)
from durox.core import events as ev
from durox.core.codec import DEFAULT_MAX_PAYLOAD_BYTES, check_payload
from durox.core.replay import TurnResult, run_turn
from durox.providers import SqliteProvider
from tests.unit.histories import T0, resolver, start
from tests.unit.scenario_support import running

Ctx = OrchestrationContext
LIMIT = 4096
BIG = "x" * LIMIT  # its JSON has two quotes more than the limit allows


def _turn(fn: Any, messages: list[ev.Message], limit: int | None = LIMIT) -> TurnResult:
    r = run_turn(
        instance_id="i",
        execution_id=0,
        history=[],
        messages=messages,
        resolve=resolver({("O", "1.0.0"): fn}),
        now_ms=T0,
        engine_version="0.1.0",
        context_factory=OrchestrationContext,
        max_payload_bytes=limit,
    )
    assert isinstance(r, TurnResult)
    return r


# ---- the measure ----------------------------------------------------------------------------


def test_the_limit_counts_utf8_bytes_of_the_json_and_includes_the_boundary() -> None:
    assert check_payload("x" * (LIMIT - 2), LIMIT, "it") == '"' + "x" * (LIMIT - 2) + '"'
    with pytest.raises(PayloadTooLargeError) as caught:
        check_payload("x" * (LIMIT - 1), LIMIT, "the thing")
    assert (caught.value.size, caught.value.limit, caught.value.what) == (
        LIMIT + 1,
        LIMIT,
        "the thing",
    )
    assert "the thing is 4097 bytes of JSON, over the payload limit of 4096" in str(caught.value)
    # 1,024 characters of three bytes each: fewer characters than the limit, more bytes.
    with pytest.raises(PayloadTooLargeError):
        check_payload("€" * 1365, LIMIT, "euros")
    check_payload("€" * 1364, LIMIT, "euros")
    assert check_payload(BIG, None, "anything") == f'"{BIG}"'


def test_the_default_is_2_mib_and_the_options_refuse_nonsense() -> None:
    assert DEFAULT_MAX_PAYLOAD_BYTES == 2 * 1024 * 1024
    assert RuntimeOptions().max_payload_bytes == ClientOptions().max_payload_bytes
    for bad in (0, 1023, -1, 2.5, True, "1MiB"):
        with pytest.raises(ConfigurationError, match="max_payload_bytes"):
            RuntimeOptions(max_payload_bytes=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="max_payload_bytes"):
            ClientOptions(max_payload_bytes=bad)  # type: ignore[arg-type]


def test_too_large_is_a_permanent_payload_error() -> None:
    err = PayloadTooLargeError("x", 2, 1)
    assert isinstance(err, PayloadError) and not err.retryable


# ---- the engine: what an orchestration hands over ------------------------------------------------


def test_an_output_over_the_limit_fails_the_orchestration_naming_the_error() -> None:
    async def fn(ctx: Ctx, _: Any) -> str:
        return BIG

    r = _turn(fn, [start()])
    assert r.status == "Failed" and r.error is not None
    assert (r.error.kind, r.error.type) == ("validation", "PayloadTooLargeError")
    assert r.error.message.startswith("output: the output is 4098 bytes")
    assert _turn(fn, [start()], limit=None).output == BIG  # no limit: completes


@pytest.mark.parametrize(
    "call",
    [
        lambda ctx: ctx.set_custom_status(BIG),
        lambda ctx: ctx.continue_as_new(BIG),
        lambda ctx: ctx.schedule_activity("A", BIG),
        lambda ctx: ctx.schedule_sub_orchestration("Child", BIG),
        lambda ctx: ctx.start_orchestration("Other", "other-1", BIG),
    ],
    ids=["custom_status", "continue_as_new", "activity_input", "sub_input", "detached_input"],
)
def test_a_payload_over_the_limit_raises_at_the_call_in_the_orchestration(call: Any) -> None:
    async def fn(ctx: Ctx, _: Any) -> str:
        try:
            call(ctx)
        except PayloadTooLargeError as exc:
            return f"refused: {exc.size} > {exc.limit}"
        return "accepted"

    r = _turn(fn, [start()])
    assert r.output == "refused: 4098 > 4096"
    assert r.activities == [] and r.messages == [] and r.custom_status is None
    assert _turn(fn, [start()], limit=None).error is None


def test_replayed_payloads_are_not_held_to_todays_limit() -> None:
    """A history recorded under a larger limit still replays: only new payloads are checked."""

    async def fn(ctx: Ctx, _: Any) -> Any:
        ctx.set_custom_status(BIG)
        return await ctx.schedule_activity("A", BIG)

    first = _turn(fn, [start()], limit=None)
    second = run_turn(
        instance_id="i",
        execution_id=1,
        history=first.new_events,
        messages=[ev.ActivityResult("i", 1, 2, "ok")],
        resolve=resolver({("O", "1.0.0"): fn}),
        now_ms=T0 + 5,
        engine_version="0.1.0",
        context_factory=OrchestrationContext,
        max_payload_bytes=LIMIT,
    )
    assert isinstance(second, TurnResult) and second.error is None and second.output == "ok"


# ---- a client and a runtime ---------------------------------------------------------------------


@pytest.fixture
async def provider() -> AsyncIterator[SqliteProvider]:
    p = await SqliteProvider.in_memory()
    yield p
    await p.close()


async def test_a_client_refuses_a_start_or_an_event_over_its_limit_and_sends_nothing(
    provider: SqliteProvider,
) -> None:
    client = Client(provider, ClientOptions(max_payload_bytes=LIMIT))
    with pytest.raises(PayloadTooLargeError, match="the orchestration input is 4098 bytes"):
        await client.start_orchestration("big", "O", BIG)
    assert (await client.get_orchestration_status("big")).status == "NotFound"
    await client.start_orchestration("small", "O", "fits")
    with pytest.raises(PayloadTooLargeError, match="the data of event 'go' is 4098 bytes"):
        await client.raise_event("small", "go", BIG)
    depths = await client.get_queue_depths()
    assert depths.orchestrator_ready == 1  # the start of "small", and no event
    with pytest.raises(PayloadTooLargeError):  # the default limit holds without options
        await Client(provider).start_orchestration("huge", "O", "x" * DEFAULT_MAX_PAYLOAD_BYTES)


async def test_an_activity_returning_too_much_fails_once_with_a_named_permanent_error(
    provider: SqliteProvider,
) -> None:
    calls: list[int] = []

    async def greedy(ctx: ActivityContext, n: int) -> str:
        calls.append(n)
        return "x" * n

    async def fn(ctx: Ctx, n: int) -> Any:
        try:
            return await ctx.schedule_activity_with_retry("Greedy", n, RetryPolicy(5))
        except ActivityFailedError as exc:
            return [exc.details.kind, exc.details.type, exc.details.message]

    acts = ActivityRegistry.builder().register("Greedy", greedy).build()
    orchs = OrchestrationRegistry.builder().register("O", fn).build()
    client = Client(provider)
    async with running(provider, acts, orchs, max_payload_bytes=LIMIT):
        await client.start_orchestration("fits", "O", 10)
        await client.start_orchestration("greedy", "O", LIMIT)
        fits = await client.wait_for_orchestration("fits", 10)
        greedy_status = await client.wait_for_orchestration("greedy", 10)
    assert fits.output == "x" * 10
    kind, type_, message = greedy_status.output
    assert (kind, type_) == ("validation", "PayloadTooLargeError")
    assert message == (
        "result: the result of 'Greedy' is 4098 bytes of JSON, over the payload limit of 4096 "
        "bytes (max_payload_bytes)"
    )
    assert sorted(calls) == [10, LIMIT]  # not retried: it would return as much again


async def test_a_runtime_holds_an_orchestration_output_to_its_own_limit(
    provider: SqliteProvider,
) -> None:
    async def fn(ctx: Ctx, n: int) -> str:
        return "x" * n

    orchs = OrchestrationRegistry.builder().register("O", fn).build()
    client = Client(provider)
    async with running(provider, None, orchs, max_payload_bytes=LIMIT):
        await client.start_orchestration("big", "O", LIMIT)
        status = await client.wait_for_orchestration("big", 10)
    assert status.status == "Failed" and status.error is not None
    assert status.error.type == "PayloadTooLargeError"
