"""Checks before the first session is replayed, so a run that cannot work stops at once with
one message instead of failing every session the same way."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

from ..errors import KoalaError
from ..model import Session
from ..store.base import SessionStore, peers_by_scan
from .targets import Address, OutboundMapping
from ..words import count

CONNECT_TIMEOUT_S = 3.0
SHOWN_PEERS = 20


async def check_answers(address: Address, flag: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """The build under test must accept connections, else one error naming the address."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address.host, address.port), min(timeout, CONNECT_TIMEOUT_S))
    except asyncio.TimeoutError:
        raise KoalaError(
            f"{flag} {address} does not answer (no connection within {min(timeout, CONNECT_TIMEOUT_S):g} s); start the build under test there or fix {flag}"
        ) from None
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        raise KoalaError(f"{flag} {address} does not answer ({why.lower()}); start the build under test there or fix {flag}") from None
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


def recorded_peers(store: SessionStore, query: str, limit: int | None, sessions: Iterator[Session] | None = None) -> dict[str, int]:
    """The dependencies the selected sessions called, with their session counts. The store
    aggregates when every matching session is replayed; with --limit or URL filters the
    selected sessions are read (`sessions`), since only they count."""
    if sessions is not None:
        return peers_by_scan(sessions)
    if limit is not None:
        return peers_by_scan(store.scan(query, limit=limit))
    return store.outbound_peers(query)


def check_peers(peers: dict[str, int], mappings: list[OutboundMapping], bypass: list[Address]) -> None:
    """Every recorded dependency must be mocked (--outbound) or let through (--bypass):
    otherwise the build would call an address nothing answers, or a real one."""
    covered = {str(m.recorded_peer) for m in mappings} | {str(b) for b in bypass}
    missing = sorted(((peer, n) for peer, n in peers.items() if peer not in covered), key=lambda item: (-item[1], item[0]))
    if not missing:
        return
    shown = ", ".join(f"{peer} ({count(n, 'session')})" for peer, n in missing[:SHOWN_PEERS])
    more = f" and {len(missing) - SHOWN_PEERS} more" if len(missing) > SHOWN_PEERS else ""
    flags = " ".join(f"--outbound 127.0.0.1:PORT={peer}" for peer, _ in missing[:3])
    raise KoalaError(
        f"{len(missing)} recorded dependenc{'ies' if len(missing) != 1 else 'y'} of the selected sessions "
        f"{'are' if len(missing) != 1 else 'is'} not mapped: {shown}{more}; add {flags}"
        f"{' ...' if len(missing) > 3 else ''} (the mock listens on 127.0.0.1:PORT; point the build's dependency there), "
        "or --bypass PEER to let the build reach the real one"
    )
