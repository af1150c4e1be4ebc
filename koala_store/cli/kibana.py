"""`koala kibana export|install`: the Kibana saved objects in kibana/, and their import."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from ..errors import KoalaError
from ..kibana.install import Kibana, install
from ..kibana.objects import DASHBOARDS, ndjson
from .common import EXIT_PARTIAL, list_rejected, note, say, user_errors

app = typer.Typer(help="Kibana dashboards for the Elasticsearch store.", no_args_is_help=True)
DEFAULT_FILE = "kibana/koala-store.ndjson"
PrefixOption = typer.Option("koala", "--prefix", help="The store's index prefix (the store URL's prefix=), which the data views read.")


def _prefix(prefix: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", prefix):
        raise KoalaError(f"--prefix {prefix!r} is not an index prefix; give lower-case letters, digits, '.', '_' or '-', as in the store URL")
    return prefix


@app.command("export")
@user_errors
def export_command(
    output: str = typer.Option(DEFAULT_FILE, "--output", "-o", help="Where to write the NDJSON ('-' for stdout)."),
    prefix: str = PrefixOption,
) -> None:
    """Write the saved objects (data views, searches, visualizations, dashboards) as NDJSON."""
    text = ndjson(_prefix(prefix))
    if output == "-":
        typer.echo(text, nl=False)
        return
    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise KoalaError(f"cannot write {output}: {exc.strerror}; give -o a writable path") from None
    note(f"wrote {len(text.splitlines())} saved objects to {output}")


@app.command("install")
@user_errors
def install_command(
    kibana: str = typer.Option(..., "--kibana", envvar="KOALA_KIBANA_URL", help="Kibana's URL, e.g. http://127.0.0.1:5601 (user:password@ to log in)."),
    space: Optional[str] = typer.Option(None, "--space", help="Kibana space id (default: the default space)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Log in with this API key (else $KOALA_ES_API_KEY, or $KOALA_ES_USER/$KOALA_ES_PASSWORD)."),
    ca_certs: Optional[str] = typer.Option(None, "--ca-certs", help="PEM file of the CA that signed Kibana's certificate (else $KOALA_ES_CA_CERT)."),
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify Kibana's TLS certificate."),
    prefix: str = PrefixOption,
) -> None:
    """Import the dashboards into Kibana (objects with the same ids are overwritten)."""
    target = Kibana(kibana, space=space, api_key=api_key, ca_certs=ca_certs, verify_certs=not insecure)
    result = install(ndjson(_prefix(prefix)), target)
    say(f"imported {result.imported} saved objects into {target.shown}")
    if result.failed:
        list_rejected(result.failed)
        raise typer.Exit(EXIT_PARTIAL)
    titles = ", ".join(f'"{d.title}"' for d in DASHBOARDS)
    note(f"dashboards {titles}: {target.base}{'/s/' + space if space else ''}/app/dashboards")

