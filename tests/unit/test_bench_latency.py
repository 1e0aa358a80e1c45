"""The latency accounting's arithmetic on synthetic marks: which mark is which hand-off, what
counts as a commit, a round trip, a wake-up."""

from __future__ import annotations

from bench.latency import MILESTONES, Mark, Recorder, account, milestones, pg_statement_writes


def _call(what: str, t: float, end: float, side: str = "runtime", items: bool = True) -> Mark:
    return Mark("call", what, side, t, end, {"items": items})


def _wake(kind: str, t: float, end: float, woken: bool = True) -> Mark:
    return Mark("wake", kind, "runtime", t, end, {"woken": woken})


def _path() -> list[Mark]:
    """One single-activity instance as the runtime of today runs it."""
    return [
        _wake("orchestration", -100.0, 1.5),
        _wake("activity", -90.0, 4.5),  # woken from inside the ack below, before it returns
        _wake("orchestration", -80.0, 7.5),
        Mark("client", "start_orchestration", "client", 0.0, 1.0),
        _call("get_instance", 1.1, 1.3, "client", items=False),
        _call("fetch_orchestration_items", 1.6, 2.5),
        Mark("code", "orchestration", "runtime", 2.6, 2.6),
        _call("ack_orchestration_items", 2.7, 4.8),
        _call("fetch_work_items", 4.9, 5.5),
        _call("fetch_orchestration_items", 4.9, 5.6, items=False),
        Mark("code", "activity", "runtime", 5.7, 5.7),
        _call("ack_work_items", 5.8, 7.6),
        _call("fetch_orchestration_items", 7.7, 8.0),
        Mark("code", "orchestration", "runtime", 8.1, 8.1),
        _call("ack_orchestration_items", 8.2, 9.9),
        _call("get_instance", 12.0, 12.2, "client"),
        Mark("client", "wait_for_orchestration", "client", 1.0, 12.3),
    ]


def test_each_hand_off_is_found_in_order() -> None:
    got = dict(milestones(_path(), 0.0))
    assert list(got) == [label for label, _ in MILESTONES]
    assert got["start committed (start_orchestration returns)"] == 1.0
    assert got["turn 1 fetched"] == 2.5
    assert got["activity dispatcher woken"] == 4.5  # before the ack that woke it returned
    assert got["activity fetched"] == 5.5
    assert got["orchestration dispatcher woken again"] == 7.5
    assert got["turn 2 fetched"] == 8.0  # not turn 1's fetch, not the empty one
    assert got["turn 2 committed (Completed)"] == 9.9
    assert got["client saw it (wait_for_orchestration returns)"] == 12.3


def test_a_hand_off_the_runtime_no_longer_makes_is_absent_not_an_error() -> None:
    inline = [m for m in _path() if m.what not in ("fetch_work_items", "activity")]
    got = dict(milestones(inline, 0.0))
    assert got["activity fetched"] is None and got["activity code ran"] is None
    assert got["activity result committed"] == 7.6


def test_counts_commits_round_trips_and_wake_ups() -> None:
    marks = [
        *_path(),
        Mark("hop", "start_instance", "client", 0.1, 0.9, {"queued_ms": 0.1}),
        Mark("commit", "1 op(s)", "store thread", 0.2, 0.8, {"ops": 1, "wrote": True}),
        Mark("read-tx", "1 op(s)", "store thread", 1.1, 1.2, {"ops": 1, "wrote": False}),
        _wake("activity", -200.0, 3.0, woken=False),
    ]
    got = account(marks, 0.0, 12.3)
    assert got["commits_that_wrote"] == 1 and got["read_only_transactions"] == 1
    assert got["round_trips"]["sqlite_thread_trips"] == 1
    assert got["round_trips"]["sqlite_thread_hops"] == 2
    assert got["wakeups"] == {"woken": 3, "timed_out": 1, "notifies_received": 0}
    assert got["client_polls"] == 2 and got["fetches_that_found_nothing"] == 1
    assert got["store_calls"]["runtime"]["ack_orchestration_items"] == 2


def test_postgres_statements_count_as_commits_when_they_write() -> None:
    call = "SELECT s.durox_ack_orchestration_batch_v2($1, $2)"
    fetch = "SELECT * FROM s.durox_fetch_work_batch($1)"
    assert pg_statement_writes("ack_orchestration_batch", call, None)
    assert pg_statement_writes("fetch_work_batch", fetch, [object()])
    assert not pg_statement_writes("fetch_work_batch", fetch, [])
    assert not pg_statement_writes("get_instance", "SELECT a FROM s.instances WHERE b = $1", None)
    assert pg_statement_writes("remove_worker", "DELETE FROM s.workers WHERE id = $1", 1)


def test_a_fetch_that_ends_before_the_waking_commit_returns_is_still_found() -> None:
    marks = _path()
    for m in marks:
        if m.what == "fetch_work_items":
            m.t, m.end = 4.6, 4.7  # the ack's caller (2.7 -> 4.8) had not resumed yet
    got = dict(milestones(marks, 0.0))
    assert got["activity fetched"] == 4.7 and got["activity code ran"] == 5.7


def test_the_window_keeps_a_call_the_client_overtook_but_not_a_later_wake_up() -> None:
    rec = Recorder()
    rec.add("call", "ack_orchestration_items", "runtime", 8.0, 13.0)  # client saw it at 12
    rec.add("wake", "orchestration", "runtime", -50.0, 20.0, woken=False)
    rec.add("call", "fetch_work_items", "runtime", 13.5, 14.0)
    got = rec.window(0.0, 12.0)
    assert [m.what for m in got] == ["ack_orchestration_items"]


def test_a_missing_wake_up_does_not_shift_the_hand_offs_after_it() -> None:
    # The first turn was found by a dispatcher whose poll timed out, not by a wake-up: the
    # wake-up that precedes turn 2 must not be taken for turn 1's.
    marks = [m for m in _path() if not (m.kind == "wake" and m.end == 1.5)]
    marks.append(_wake("orchestration", -200.0, 1.4, woken=False))
    got = dict(milestones(marks, 0.0))
    assert got["orchestration dispatcher woken"] is None
    assert got["turn 1 fetched"] == 2.5 and got["turn 2 fetched"] == 8.0
    assert got["orchestration dispatcher woken again"] == 7.5
