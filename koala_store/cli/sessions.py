"""`koala sessions search|show|export|delete`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from itertools import chain, islice
from typing import Optional

import orjson
import typer

from ..export import export
from ..formats import Format, escaped, koala
from ..formats.document import derived_fields, ns_to_iso
from ..query.parse import parse
from ..model import AppendFile, CallOutbound, ReadStorage, ReturnInbound, SendUDP, Session
from ..summary import summarize
from ..wire import FASTCGI, ParsedTalk, fastcgi, http1, parse_talk
from .common import EXIT_PARTIAL, IndexOption, StoreOption, console, fail, note, progress_bar, report_skipped, say, store_from, user_errors
from ..words import count

app = typer.Typer(help="Search, show, export and delete stored sessions.", no_args_is_help=True)

COUNTED = 10_000  # a search counts its matches up to this many
QUERY_HELP = "Lucene query, e.g. 'inbound.path:/v1/order AND inbound.status:>=500' ('*' for all; see README for fields)."


@app.command("search")
@user_errors
def search(
    query: str = typer.Argument("*", help=QUERY_HELP),
    limit: int = typer.Option(20, "--limit", "-n", min=0, help="Show at most this many sessions (0: all of them)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line with the derived fields."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
) -> None:
    """List sessions matching QUERY, oldest first, as they stream from the store."""
    parse(query)  # a bad query is named before any store is opened
    store = store_from(store_url, index, readonly=True)
    try:
        sessions = store.scan(query, limit=limit or None)
        shown = _print_json(sessions) if as_json else _print_table(sessions)
        if as_json:
            sys.stdout.buffer.flush()
        if not as_json:
            # Counting is a second query: only when the limit may have cut the list short, and
            # only up to COUNTED (as Kibana shows "10,000+ hits"): a million matches of a common
            # word take seconds to count, where the first page takes milliseconds.
            total = store.count(query, at_most=COUNTED) if limit and shown >= limit else shown
            more = f"; showing the first {shown} (--limit)" if total > shown else ""
            matched = f"more than {COUNTED:,} sessions" if total > COUNTED else count(total, "session")
            note(f"{matched} match{more}")
        partial = report_skipped(store)
    finally:
        store.close()
    if partial:
        raise typer.Exit(EXIT_PARTIAL)


def _print_json(sessions: Iterator[Session]) -> int:
    out = sys.stdout.buffer
    count = 0
    for session in sessions:
        out.write(orjson.dumps({"session_id": session.session_id, **derived_fields(summarize(session))}) + b"\n")
        count += 1
    return count


_COLUMNS = (("session id", "<"), ("recorded at (UTC)", "<"), ("method", "<"), ("path", "<"), ("status", ">"), ("out", ">"), ("ms", ">"))
_FIRST_PAGE = 100


def _row(session: Session) -> tuple[str, ...]:
    s = summarize(session)
    return (
        s.session_id,
        ns_to_iso(s.recorded_at)[:19].replace("T", " "),
        s.method,
        s.path + (f"?{s.query}" if s.query else ""),
        "" if s.status is None else str(s.status),
        str(len(s.outbound)),
        "" if s.latency_ms is None else f"{s.latency_ms:.1f}",
    )


def _print_table(sessions: Iterator[Session]) -> int:
    """A table printed as rows arrive, in bounded memory: the first page sets the column
    widths (a longer value later just pushes its line wider)."""
    first = [_row(s) for s in islice(sessions, _FIRST_PAGE)]
    widths = [max([len(title), *(len(row[i]) for row in first)]) for i, (title, _) in enumerate(_COLUMNS)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(f"{cell:{align}{width}}" for cell, (_, align), width in zip(cells, _COLUMNS, widths, strict=True)).rstrip()

    out = sys.stdout
    out.write(line(tuple(title for title, _ in _COLUMNS)) + "\n")
    count = 0
    for row in chain(first, (_row(s) for s in sessions)):
        out.write(line(row) + "\n")
        count += 1
    out.flush()
    return count


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
    store = store_from(store_url, index, readonly=True)
    try:
        session = store.get(session_id)
    finally:
        store.close()
    if session is None:
        if store.skipped:
            report_skipped(store)
            raise fail(f"session {session_id!r} is in {store.url} but cannot be read as a session (see above)")
        raise fail(f"no session {session_id!r} in {store.url}; list them with `koala sessions search`")
    if raw:
        sys.stdout.buffer.write(koala.dumps(session) + b"\n")
    else:
        console.print(describe(session), highlight=False, markup=False, soft_wrap=True)


@app.command("export")
@user_errors
def export_command(
    query: str = typer.Argument(..., help=QUERY_HELP),
    fmt: Format = typer.Option(..., "--format", "-f", help="koala and replayer write one file per session into a folder; gor and ndjson one file."),
    output: str = typer.Option(..., "--output", "-o", help="Folder (koala, replayer), file (gor, ndjson; .gz compresses) or - for stdout."),
    force: bool = typer.Option(False, "--force", help="Replace files that already exist (without it they are left as they are)."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
) -> None:
    """Write the sessions matching QUERY in Koala, replayer, GoReplay or NDJSON format."""
    parse(query)
    store = store_from(store_url, index, readonly=True)
    try:
        total = store.count(query)
        with progress_bar() as bar:
            task = bar.add_task("exporting", total=total)
            report = export(store.scan(query), fmt, output, progress=lambda n: bar.advance(task, n), force=force)
        partial = report_skipped(store)
    finally:
        store.close()
    note(f"exported {count(report.written, 'session')} to {output}")
    if report.not_written:
        note(f"not written {len(report.not_written)}:")
        for item in report.not_written:
            note(f"  session {item.session_id}: {item.reason}")
    if partial or report.not_written:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("delete")
@user_errors
def delete(
    query: str = typer.Argument(..., help=QUERY_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="Really delete."),
    store_url: Optional[str] = StoreOption,
    index: Optional[str] = IndexOption,
) -> None:
    """Delete the sessions matching QUERY."""
    parse(query)
    store = store_from(store_url, index, readonly=not yes)
    try:
        if not yes:
            matching = store.count(query)
            raise fail(f"this would delete {count(matching, 'session')} from {store.url}; add --yes to delete them")
        deleted = store.delete(query)
        partial = report_skipped(store)
    finally:
        store.close()
    say(f"deleted {count(deleted, 'session')} from {store.url}")
    if partial:
        raise typer.Exit(EXIT_PARTIAL)
