"""`koala es start|stop|status`: the local Elasticsearch for development and tests."""

from __future__ import annotations

import orjson
import typer

from ..es import LocalElasticsearch
from ..es.local import DEFAULT_HEAP, DEFAULT_PORT
from .common import note, say, user_errors

app = typer.Typer(help="Run a real local Elasticsearch (fetched from Maven Central, cached).", no_args_is_help=True)
PortOption = typer.Option(DEFAULT_PORT, "--port", "-p", min=1, max=65535, help="HTTP port on 127.0.0.1.")
SecureOption = typer.Option(
    False, "--secure", help="Security on: HTTPS with a local CA and the elastic user, whose random password is kept in a file only you may read."
)


@app.command("start")
@user_errors
def start(
    port: int = PortOption,
    heap: str = typer.Option(DEFAULT_HEAP, "--heap", help="JVM heap, e.g. 512m or 1g."),
    secure: bool = SecureOption,
) -> None:
    """Fetch (first time), start and wait until healthy; prints the URL for --store."""
    node = LocalElasticsearch(port, heap=heap, secure=secure)
    note(f"starting Elasticsearch {node.version} on port {port} (data in {node.instance})")
    url = node.start()
    if secure:
        # The password is never printed: it is in a file only this user may read.
        note(f"user {node.user}, password in {node.password_file} (readable by you only), CA certificate {node.ca_cert}")
        note(f'use it with: export KOALA_ES_USER={node.user} KOALA_ES_PASSWORD="$(cat {node.password_file})"')
        url = f"https://127.0.0.1:{port}?ca_certs={node.ca_cert}"
    say(url)


@app.command("stop")
@user_errors
def stop(port: int = PortOption) -> None:
    """Stop the instance on this port (secure or not)."""
    if LocalElasticsearch(port).stop():
        note(f"stopped Elasticsearch on port {port}")
    else:
        note(f"no local Elasticsearch was running on port {port}")


@app.command("status")
@user_errors
def status(port: int = PortOption, secure: bool = SecureOption) -> None:
    """Print whether it runs, its pid, URL and health as JSON; exit 1 when it is not running."""
    info = LocalElasticsearch(port, secure=secure).status()
    say(orjson.dumps(info).decode())
    if not info["running"]:
        raise typer.Exit(1)
