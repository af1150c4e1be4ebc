"""`koala serve`: the HTTP ingest service recorders post sessions to."""

from __future__ import annotations

import os
import re
import signal
from typing import Optional

import typer

from ..errors import KoalaError
from ..ingest.service import DEFAULT_LISTEN, MAX_DOCUMENT, ServeConfig, serve
from ..redaction import Rules
from ..replay.targets import parse_address
from ..store import resolve_url
from .common import IndexOption, StoreOption, note, user_errors

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.I)

RedactHeaderOption = typer.Option([], "--redact-header", help="Mask this header's values too (Authorization, Cookie and Set-Cookie always are; repeatable).")
RedactBodyOption = typer.Option([], "--redact-body", help=r"Mask body matches of this regular expression, e.g. '\b\d{13,19}\b' (repeatable).")
NoDefaultRedactionOption = typer.Option(False, "--no-default-redaction", help="Do not mask Authorization, Cookie and Set-Cookie.")
SpoolOption = typer.Option("koala-spool", "--spool", help="Folder of the durable spool (sessions wait there until stored).")
MaxSpoolOption = typer.Option("1GiB", "--max-spool", help="Spool size past which new sessions are refused (429), e.g. 512MiB.")


def parse_size(text: str, flag: str) -> int:
    """`1GiB`, `512MB`, `64k` or plain bytes."""
    match = _SIZE.match(text)
    if not match:
        raise KoalaError(f"{flag} {text!r} is not a size; write e.g. 512MiB or 1GiB")
    value = float(match.group(1)) * 1024 ** " kmgt".index((match.group(2) or " ").lower())
    if value < 1:
        raise KoalaError(f"{flag} {text!r} must be at least 1 byte")
    return int(value)


def redaction_rules(headers: list[str], bodies: list[str], no_defaults: bool) -> Rules:
    return Rules.from_options(headers, bodies, defaults=not no_defaults)


@user_errors
def serve_command(
    listen: str = typer.Option(DEFAULT_LISTEN, "--listen", "-l", help="HOST:PORT to listen on (loopback by default; any other address needs --token)."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
    spool: str = SpoolOption,
    max_spool: str = MaxSpoolOption,
    max_document: str = typer.Option(str(MAX_DOCUMENT), "--max-document", help="Largest session document accepted, e.g. 16MiB (413 beyond)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="KOALA_SERVE_TOKEN", help="Bearer token every request must carry (required off loopback).", show_default=False),
    tls_cert: Optional[str] = typer.Option(None, "--tls-cert", help="Serve HTTPS with this certificate (PEM)."),
    tls_key: Optional[str] = typer.Option(None, "--tls-key", help="The certificate's private key (PEM)."),
    redact_header: list[str] = RedactHeaderOption,
    redact_body: list[str] = RedactBodyOption,
    no_default_redaction: bool = NoDefaultRedactionOption,
    batch: int = typer.Option(500, "--batch", min=1, help="Sessions per write to the store."),
    drain: float = typer.Option(10.0, "--drain", min=0, help="Seconds to keep storing spooled sessions after Ctrl-C/SIGTERM (the rest stays spooled)."),
) -> None:
    """Accept sessions over HTTP (Koala's recorder with KOALA_RECORD_TO_ES=http://HOST:2580/<index>/_doc,
    Elasticsearch bulk, NDJSON), spool them durably and store them in batches."""
    address = parse_address(listen, "--listen", default_host="127.0.0.1")
    for path, flag in ((tls_cert, "--tls-cert"), (tls_key, "--tls-key")):
        if path and not os.path.isfile(path):
            raise KoalaError(f"{flag} {path}: no such file; give the PEM file")
    config = ServeConfig(
        host=address.host,
        port=address.port,
        store_url=resolve_url(store_url),
        index=index,
        spool=spool,
        max_spool=parse_size(max_spool, "--max-spool"),
        max_document=parse_size(max_document, "--max-document"),
        token=token or None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        rules=redaction_rules(redact_header, redact_body, no_default_redaction),
        batch=batch,
        drain_for=drain,
    )
    result = serve(config, log=note)
    stored = "all of them stored" if not result.left_in_spool else f"{result.left_in_spool} still in spool {spool} (stored at the next start)"
    if result.stopped_by is not None:
        note(f"interrupted; {result.accepted} sessions accepted, {stored}")
        raise typer.Exit(143 if result.stopped_by == signal.SIGTERM else 130)
    note(f"stopped; {result.accepted} sessions accepted, {stored}")
