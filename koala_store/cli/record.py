"""`koala record`: the recording proxies in front of a service and its dependencies."""

from __future__ import annotations

import signal
from typing import Optional

import typer

from ..record.run import OutboundProxy, RecordConfig, record
from ..replay.targets import parse_address, parse_listen_pair
from ..store import resolve_url
from .common import IndexOption, StoreOption, note, user_errors
from .serve import MaxSpoolOption, NoDefaultRedactionOption, RedactBodyOption, RedactHeaderOption, SpoolOption, parse_size, redaction_rules


def parse_outbound(text: str) -> OutboundProxy:
    listen, upstream = parse_listen_pair(
        text,
        "UPSTREAM",
        "127.0.0.1:16379=127.0.0.1:6379",
        "the proxy listens on the left, where the service is told its dependency is; the right is the real dependency",
    )
    return OutboundProxy(listen, upstream)


@user_errors
def record_command(
    listen: str = typer.Option(..., "--listen", "-l", help="HOST:PORT the clients call (the reverse proxy in front of the service)."),
    target: str = typer.Option(..., "--target", "-t", help="HOST:PORT of the service."),
    outbound: list[str] = typer.Option([], "--outbound", "-o", help="LISTEN=UPSTREAM: a proxy on LISTEN for the dependency at UPSTREAM (repeatable); point the service at LISTEN. Replay takes the same mapping."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
    serial: bool = typer.Option(False, "--serial", help="Let one inbound request at a time through the service, so every outbound talk is attributed."),
    sample: float = typer.Option(1.0, "--sample", help="Share of inbound requests to record, e.g. 0.1 (all are proxied)."),
    allow_url: list[str] = typer.Option([], "--allow-url", help="Record only requests whose target matches (repeatable)."),
    disallow_url: list[str] = typer.Option([], "--disallow-url", help="Do not record requests whose target matches (repeatable)."),
    spool: str = SpoolOption,
    max_spool: str = MaxSpoolOption,
    redact_header: list[str] = RedactHeaderOption,
    redact_body: list[str] = RedactBodyOption,
    no_default_redaction: bool = NoDefaultRedactionOption,
    metrics: Optional[str] = typer.Option(None, "--metrics", help="HOST:PORT to serve Prometheus metrics on (/metrics)."),
    batch: int = typer.Option(500, "--batch", min=1, help="Sessions per write to the store."),
    drain: float = typer.Option(10.0, "--drain", min=0, help="Seconds to keep storing spooled sessions after Ctrl-C/SIGTERM (the rest stays spooled)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No status line every 10 s."),
) -> None:
    """Record a service's traffic as Koala sessions: each inbound request with its response and
    the outbound calls made while serving it. Runs until Ctrl-C or SIGTERM."""
    config = RecordConfig(
        listen=parse_address(listen, "--listen", default_host="127.0.0.1"),
        target=parse_address(target, "--target"),
        outbound=[parse_outbound(o) for o in outbound],
        store_url=resolve_url(store_url),
        index=index,
        spool=spool,
        max_spool=parse_size(max_spool, "--max-spool"),
        serial=serial,
        sample=sample,
        allow_url=allow_url,
        disallow_url=disallow_url,
        rules=redaction_rules(redact_header, redact_body, no_default_redaction),
        metrics=parse_address(metrics, "--metrics", default_host="127.0.0.1") if metrics else None,
        batch=batch,
        drain_for=drain,
        quiet=quiet,
    )
    result = record(config, log=note)
    kept = "all stored" if not result.left_in_spool else f"{result.left_in_spool} still in spool {spool} (stored at the next start)"
    line = f"{result.complete} complete and {result.incomplete} incomplete sessions recorded; {kept}"
    if result.stopped_by is not None:
        note(f"interrupted; {line}")
        raise typer.Exit(143 if result.stopped_by == signal.SIGTERM else 130)
    note(line)
