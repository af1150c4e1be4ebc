"""Talking to a helper process (mock_process): starting a child on a pair of Unix sockets,
length-prefixed msgpack messages, and talks sent without the recorded calls the other side
already holds."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from ..diff import Talk
from ..model import CallOutbound

LENGTH = 4  # bytes of the big-endian length before each message
_encoder = msgspec.msgpack.Encoder()


def frame(message: msgspec.Struct) -> bytes:
    payload = _encoder.encode(message)
    return len(payload).to_bytes(LENGTH, "big") + payload


def take_frames(buffer: bytearray, decoder: msgspec.msgpack.Decoder) -> list[Any]:
    """The complete messages at the start of `buffer`, removed from it."""
    messages = []
    view = memoryview(buffer)
    used = 0
    while len(view) - used >= LENGTH:
        size = int.from_bytes(view[used : used + LENGTH], "big")
        if len(view) - used - LENGTH < size:
            break
        messages.append(decoder.decode(view[used + LENGTH : used + LENGTH + size]))
        used += LENGTH + size
    view.release()
    if used:
        del buffer[:used]
    return messages


async def spawn(module: str) -> tuple[asyncio.subprocess.Process, socket.socket, socket.socket]:
    """`python -m module IN_FD OUT_FD`, and this side's ends: (process, to_child, from_child)."""
    to_child, child_in = socket.socketpair()
    from_child, child_out = socket.socketpair()
    root = str(Path(__file__).resolve().parents[2])  # where koala_store and matchers live
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, str(child_in.fileno()), str(child_out.fileno()), pass_fds=(child_in.fileno(), child_out.fileno()), env=env
        )
    except BaseException:
        for sock in (to_child, from_child):
            sock.close()
        raise
    finally:
        child_in.close()
        child_out.close()
    return process, to_child, from_child


def without_own_calls(talks: Sequence[Talk], calls: Sequence[CallOutbound]) -> tuple[list[Talk], list[bool]]:
    """The talks with each match's call left out where it is the session's own call at its
    position (the receiver has the session: those bytes need not cross), and which were."""
    own = []
    sent = []
    for talk in talks:
        result = talk.match
        mine = (
            talk.answered_from is None
            and result.position is not None
            and result.call is not None
            and result.position < len(calls)
            and result.call is calls[result.position]
        )
        own.append(mine)
        sent.append(msgspec.structs.replace(talk, match=msgspec.structs.replace(result, call=None)) if mine else talk)
    return sent, own


def with_own_calls(talks: list[Talk], own: Sequence[bool], calls: Sequence[CallOutbound]) -> list[Talk]:
    """Undo without_own_calls (in place): each marked talk's match gets its call back."""
    for index, mine in enumerate(own):
        if mine:
            talk = talks[index]
            assert talk.match.position is not None
            talk.match = msgspec.structs.replace(talk.match, call=calls[talk.match.position])
    return talks
