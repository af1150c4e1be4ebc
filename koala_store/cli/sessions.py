"""`koala sessions search|show|export|delete`."""

from __future__ import annotations

import sys
from typing import Optional

import orjson
import typer
from rich.table import Table

from ..export import EXPORT_FORMATS, export
from ..formats import escaped, koala
from ..formats.document import derived_fields, ns_to_iso
from ..model import AppendFile, CallOutbound, ReadStorage, ReturnInbound, SendUDP, Session
from ..summary import summarize
from ..wire import FASTCGI, ParsedTalk, fastcgi, http1, parse_talk
from .common import IndexOption, StoreOption, console, fail, note, progress_bar, say, store_from, user_errors

app = typer.Typer(help="Search, show, export and delete stored sessions.", no_args_is_help=True)

QUERY_HELP = "Lucene query, e.g. 'inbound.path:/v1/order AND inbound.status:>=500' ('*' for all; see README for fields)."


@app.command("search")
@user_errors
def search(
    query: str = typer.Argument("*", help=QUERY_HELP),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Show at most this many sessions."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line with the derived fields."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
) -> None:
    """List sessions matching QUERY, oldest first."""
    store = store_from(store_url, index)
    try:
        total = store.count(query)
        sessions = list(store.scan(query, limit=limit))
    finally:
        store.close()
    if as_json:
        for session in sessions:
            summary = summarize(session)
            sys.stdout.buffer.write(orjson.dumps({"session_id": session.session_id, **derived_fields(summary)}) + b"\n")
        return
    table = Table(box=None, header_style="bold")
    table.add_column("session id", no_wrap=True)
    table.add_column("recorded at (UTC)", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("path", overflow="fold", min_width=12)
    table.add_column("status", justify="right", no_wrap=True)
    table.add_column("out", justify="right", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    for session in sessions:
        s = summarize(session)
        table.add_row(
            s.session_id,
            ns_to_iso(s.recorded_at)[:19].replace("T", " "),
            s.method,
            s.path + (f"?{s.query}" if s.query else ""),
            "" if s.status is None else str(s.status),
            str(len(s.outbound)),
            "" if s.latency_ms is None else f"{s.latency_ms:.1f}",
        )
    console.print(table)
    more = f"; showing the first {len(sessions)} (--limit)" if total > len(sessions) else ""
    note(f"{total} sessions match{more}")


def _shown(data: bytes, limit: int = 2000) -> str:
    text = escaped.encode(data[:limit])
    return text + (f"... ({len(data) - limit} more bytes)" if len(data) > limit else "")


def _as_read(talk: ParsedTalk) -> tuple[bytes, bytes]:
    """A talk's request and response as people read them: a FastCGI talk as the HTTP it
    carries (records, padding and CGI-only params left out), anything else as recorded."""
    if talk.protocol is not FASTCGI or talk.http is None:
        return talk.request, talk.response
    answer = talk.http_response
    return http1.render_request(talk.http), http1.render_response(answer) if answer is not None else talk.response


def describe(session: Session) -> str:
    """A readable account of a session: inbound, then each action in order."""
    s = summarize(session)
    cfi = session.call_from_inbound
    inbound = parse_talk(cfi.request, session.response)
    request, response = _as_read(inbound)
    framing = " (FastCGI, shown as HTTP)" if inbound.protocol is FASTCGI else ""
    lines = [
        f"session     {session.session_id}",
        f"recorded at {ns_to_iso(s.recorded_at)}" + ("" if s.latency_ms is None else f"   latency {s.latency_ms:.3f} ms"),
        f"inbound     {s.method or '?'} {s.path}{'?' + s.query if s.query else ''} from {cfi.peer.address}"
        + ("" if s.status is None else f" -> {s.status} {s.content_type}"),
        "",
        f"--- inbound request{framing} ---",
        _shown(request),
        f"--- inbound response{framing} ---",
        _shown(response) if session.answered else "(none recorded: the service never answered; Koala's ReturnInbound is null)",
    ]
    answer = fastcgi.parse_response(session.response) if framing else None
    if answer is not None and answer.stderr:
        lines += ["--- inbound stderr (FastCGI) ---", _shown(answer.stderr)]
    lines += ["", f"--- actions ({len(session.actions)}) ---"]
    for action in session.actions:
        head = f"[{action.action_index}] {type(action).__name__}"
        if isinstance(action, CallOutbound):
            talk = parse_talk(action.request, action.response, action.peer.port)
            out, back = _as_read(talk)
            lines.append(f"{head} {action.connection} {talk.protocol} ({len(action.request)} B out, {len(action.response)} B back)")
            lines.append(f"    > {_shown(out, 300)}")
            lines.append(f"    < {_shown(back, 300)}")
        elif isinstance(action, AppendFile):
            lines.append(f"{head} {action.file_name}: {_shown(action.content, 300)}")
        elif isinstance(action, SendUDP):
            lines.append(f"{head} {action.peer.address}: {_shown(action.content, 300)}")
        elif isinstance(action, ReadStorage):
            lines.append(f"{head}: {_shown(action.content, 300)}")
        elif isinstance(action, ReturnInbound):
            lines.append(f"{head} ({len(action.response)} B)")
        else:
            lines.append(head)
    return "\n".join(lines)


@app.command("show")
@user_errors
def show(
    session_id: str = typer.Argument(..., help="A SessionId, as `koala sessions search` lists them."),
    raw: bool = typer.Option(False, "--raw", help="Print the session as Koala's recorded JSON."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
) -> None:
    """Show one session."""
    store = store_from(store_url, index)
    try:
        session = store.get(session_id)
    finally:
        store.close()
    if session is None:
        raise fail(f"no session {session_id!r} in {store.url}; list them with `koala sessions search`")
    if raw:
        sys.stdout.buffer.write(koala.dumps(session) + b"\n")
    else:
        console.print(describe(session), highlight=False, markup=False, soft_wrap=True)


@app.command("export")
@user_errors
def export_command(
    query: str = typer.Argument(..., help=QUERY_HELP),
    fmt: str = typer.Option(..., "--format", "-f", help=f"One of {', '.join(EXPORT_FORMATS)}; koala and replayer write one file per session into a folder."),
    output: str = typer.Option(..., "--output", "-o", help="Folder (koala, replayer), file (gor, ndjson; .gz compresses) or - for stdout."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
) -> None:
    """Write the sessions matching QUERY in Koala, replayer, GoReplay or NDJSON format."""
    if fmt not in EXPORT_FORMATS:
        raise fail(f"--format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    store = store_from(store_url, index)
    try:
        total = store.count(query)
        with progress_bar() as bar:
            task = bar.add_task("exporting", total=total)
            count = export(store.scan(query), fmt, output, progress=lambda n: bar.advance(task, n))
    finally:
        store.close()
    note(f"exported {count} sessions to {output}")


@app.command("delete")
@user_errors
def delete(
    query: str = typer.Argument(..., help=QUERY_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="Really delete."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
) -> None:
    """Delete the sessions matching QUERY."""
    store = store_from(store_url, index)
    try:
        if not yes:
            count = store.count(query)
            raise fail(f"this would delete {count} sessions from {store.url}; add --yes to delete them")
        deleted = store.delete(query)
    finally:
        store.close()
    say(f"deleted {deleted} sessions from {store.url}")
