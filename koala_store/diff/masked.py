"""Values the recording masked (koala_store.redaction) are not compared: the replayed bytes
get the same masks before the diff, so a masked header or body value meets a masked value."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from koala_store.model import Session
from koala_store.redaction import mask_like

from .outbound import Talk


def as_recorded(session: Session, response: bytes, talks: Sequence[Talk]) -> tuple[bytes, list[Talk]]:
    """The replayed response and outbound talks, masked where the recording was."""
    if not session.redactions:
        return response, list(talks)
    response = mask_like(response, session.redactions, "inbound.response")
    masked = [msgspec.structs.replace(t, request=mask_like(t.request, session.redactions, "outbound.request")) if t.request else t for t in talks]
    return response, masked
