"""A reconnect mid-run: the mock closes the service's pooled Redis connection on a call that
matches nothing (fail closed); the service opens a new one for its next request, and that
connection's set-up (HELLO, CLIENT SETINFO...) is answered from the recorded opening, so the
sessions after it replay the same."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from demo_runs import ingest_demo, replay_demo
from koala_store.store.sqlite import SqliteStore

pytest.importorskip("redis")
BROKEN = "1795320054133370108-2"  # GET /orders/1: its recorded Redis GET becomes an EXISTS
OPENER = "1795320053825103978-1"  # the session that recorded the pool's opening


def test_the_pool_reconnects_after_a_closed_connection_and_its_set_up_is_answered(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "k.db")
    ingest_demo(store)
    session = store.get(BROKEN)
    assert session is not None
    (call,) = session.outbound_calls
    changed = msgspec.structs.replace(call, request=call.request.replace(b"$3\r\nGET", b"$6\r\nEXISTS"))
    session.actions = [changed if a is call else a for a in session.actions]
    store.put_many([session])
    summary = replay_demo(store, "v1", "inbound.path:/orders/*")  # four GET /orders/{id}, the broken one second
    comparisons = {c.session_id: c for c in store.runs.comparisons(summary.run_id)}
    broken = comparisons.pop(BROKEN)
    # redis-py retries on a closed connection: each retry reconnects, its set-up answered
    # from the recorded opening, and its GET matched nothing again.
    assert broken.verdict in ("different", "error") and broken.outbound.unmatched >= 1
    assert broken.outbound.setup == 4 * broken.outbound.unmatched
    assert {t.answered_from for t in broken.outbound.talks if t.answered_from} == {OPENER}
    assert all(c.verdict == "same" for c in comparisons.values()), [(c.session_id, c.differences, c.error) for c in comparisons.values()]
    # The first session after the broken one opened the pool again: its set-up came from the opener.
    reopened = [c for c in comparisons.values() if c.recorded_at > broken.recorded_at and c.outbound.setup]
    assert reopened and {t.answered_from for t in reopened[0].outbound.talks if t.answered_from} == {OPENER}
