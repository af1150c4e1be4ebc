"""The demo recording replayed against the demo service's v1 or v2 build, into any store
(as tests/test_demo_replay.py does on SQLite): real service process, real mock sockets."""

from __future__ import annotations

import sys

from koala_store.ingest import ingest
from koala_store.results import RunSummary
from koala_store.replay.runner import ReplayOptions, replay
from koala_store.replay.targets import Address, OutboundMapping
from koala_store.store.base import SessionStore
from replay_helpers import ROOT, free_port, running

DEMO = ROOT / "examples" / "demo"
REDIS_PEER, DOWNSTREAM_PEER = "127.0.0.1:16379", "127.0.0.1:18081"  # as the recording shows them


def ingest_demo(store: SessionStore) -> None:
    report = ingest([str(DEMO / "recording")], store)
    assert report.stored + report.unchanged == 25 and not report.rejected, report


def replay_demo(store: SessionStore, build: str, query: str = "*") -> RunSummary:
    """Replay `query`'s sessions against a freshly started demo service of `build` (v1, v2)."""
    redis, downstream, port = free_port(), free_port(), free_port()
    command = [sys.executable, str(DEMO / "service.py"), "--port", str(port), "--redis", f"127.0.0.1:{redis}", "--downstream", f"http://127.0.0.1:{downstream}", "--build", build]
    with running(command, port):
        return replay(
            store,
            ReplayOptions(
                target=Address("127.0.0.1", port),
                query=query,
                mappings=[
                    OutboundMapping(Address("127.0.0.1", redis), Address("127.0.0.1", 16379)),
                    OutboundMapping(Address("127.0.0.1", downstream), Address("127.0.0.1", 18081)),
                ],
                run_name=f"demo-{build}",
            ),
        )
