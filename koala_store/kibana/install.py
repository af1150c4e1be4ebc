"""`koala kibana install`: import the saved objects through Kibana's saved objects import API
(`POST [/s/SPACE]/api/saved_objects/_import?overwrite=true`, multipart field `file`, header
`kbn-xsrf`), after checking that the URL is a Kibana recent enough for them.

Logging in works as for the store: a user in the URL (`https://user:pw@kibana:5601`), else
an API key, else `$KOALA_ES_API_KEY`, else `$KOALA_ES_USER`/`$KOALA_ES_PASSWORD` (Kibana
logs in with Elasticsearch's users); `ca_certs`/`$KOALA_ES_CA_CERT` and `verify_certs` for TLS.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import msgspec
import urllib3

from ..errors import KoalaError
from .objects import MINIMUM_KIBANA

TIMEOUT = urllib3.Timeout(connect=10, read=120)


class KibanaError(KoalaError):
    """Kibana could not be reached, refused us, or refused the objects."""


class ImportResult(msgspec.Struct):
    imported: int
    failed: list[str]  # one line per object Kibana refused: "type id: why"


class Kibana:
    """Where Kibana is and how to log in to it."""

    def __init__(self, url: str, *, space: str | None = None, api_key: str | None = None, ca_certs: str | None = None, verify_certs: bool = True):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise KibanaError(f"--kibana {url!r} is not a Kibana URL; give e.g. http://127.0.0.1:5601")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.base = f"{parts.scheme}://{host}:{parts.port or (443 if parts.scheme == 'https' else 5601)}{parts.path.rstrip('/')}"
        if space is not None and not re.fullmatch(r"[a-z0-9_-]+", space):
            raise KibanaError(f"--space {space!r} is not a Kibana space id (lower-case letters, digits, _ and -)")
        self.space = space
        self.headers = {"kbn-xsrf": "koala-store"}
        env = os.environ
        if parts.username:
            self.headers.update(urllib3.make_headers(basic_auth=f"{unquote(parts.username)}:{unquote(parts.password or '')}"))
        elif api_key or env.get("KOALA_ES_API_KEY"):
            self.headers["Authorization"] = f"ApiKey {api_key or env['KOALA_ES_API_KEY']}"
        elif env.get("KOALA_ES_USER"):
            self.headers.update(urllib3.make_headers(basic_auth=f"{env['KOALA_ES_USER']}:{env.get('KOALA_ES_PASSWORD', '')}"))
        ca_certs = ca_certs or env.get("KOALA_ES_CA_CERT")
        if ca_certs and not os.path.exists(ca_certs):
            raise KibanaError(f"CA certificate {ca_certs} does not exist; pass the PEM file that signed Kibana's certificate")
        tls: dict[str, Any] = {}
        if parts.scheme == "https":
            tls = {"cert_reqs": "CERT_REQUIRED" if verify_certs else "CERT_NONE", "ca_certs": ca_certs}
            if not verify_certs:
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.http = urllib3.PoolManager(timeout=TIMEOUT, retries=urllib3.Retry(total=2, connect=2, read=0, redirect=0, status=0), **tls)
        self.shown = self.base + (f" (space {space})" if space else "")

    def _url(self, api: str) -> str:
        return self.base + (f"/s/{quote(self.space)}" if self.space else "") + api

    def request(self, method: str, api: str, **kwargs: Any) -> urllib3.BaseHTTPResponse:
        try:
            return self.http.request(method, self._url(api), headers=self.headers | kwargs.pop("headers", {}), **kwargs)
        except urllib3.exceptions.SSLError as exc:
            raise KibanaError(f"TLS with Kibana at {self.base} failed ({_reason(exc)}); give --ca-certs with the CA that signed its certificate, or --insecure") from None
        except urllib3.exceptions.HTTPError as exc:
            raise KibanaError(f"cannot reach Kibana at {self.base} ({_reason(exc)}); check --kibana (Kibana listens on port 5601 by default)") from None

    def version(self) -> tuple[int, int, int]:
        """Kibana's version, from GET /api/status; errors name what is wrong with the URL or login."""
        reply = self.request("GET", "/api/status")
        self._refused(reply, "read Kibana's status")
        body = _json(reply)
        number = (body.get("version") or {}).get("number") if isinstance(body, dict) else None
        match = re.match(r"(\d+)\.(\d+)\.(\d+)", number or "")
        if reply.status != 200 or match is None:
            raise KibanaError(f"{self.base} does not answer as Kibana does (GET /api/status: HTTP {reply.status}); give Kibana's URL, e.g. http://127.0.0.1:5601")
        return int(match.group(1)), int(match.group(2)), int(match.group(3))

    def _refused(self, reply: urllib3.BaseHTTPResponse, what: str) -> None:
        if reply.status == 401:
            raise KibanaError(f"Kibana at {self.base} refused the login ({_message(reply)}); give user:password in --kibana, --api-key, or $KOALA_ES_USER/$KOALA_ES_PASSWORD")
        if reply.status == 403:
            raise KibanaError(
                f"the user may not {what} in Kibana at {self.shown} ({_message(reply)}); "
                "give a user whose role has the Saved Objects Management privilege (all) in that space"
            )
        if reply.status == 404 and self.space and "space" in _message(reply).lower():
            raise KibanaError(f"Kibana at {self.base} has no space {self.space!r}; create it or leave --space out for the default space")

    def import_objects(self, ndjson: str) -> ImportResult:
        fields = {"file": ("koala-store.ndjson", ndjson.encode(), "application/ndjson")}
        reply = self.request("POST", "/api/saved_objects/_import?overwrite=true", fields=fields)
        self._refused(reply, "import saved objects")
        body = _json(reply)
        if reply.status == 400:
            raise KibanaError(f"Kibana at {self.shown} refused the saved objects: {_message(reply)}")
        if reply.status != 200 or not isinstance(body, dict) or "success" not in body:
            raise KibanaError(f"{self.shown} did not import the saved objects (POST /api/saved_objects/_import: HTTP {reply.status} {_message(reply)}); check --kibana")
        failed = [f"{e.get('type')} {e.get('id')}: {(e.get('error') or {}).get('message') or (e.get('error') or {}).get('type')}" for e in body.get("errors") or []]
        return ImportResult(imported=int(body.get("successCount", 0)), failed=failed)


def install(ndjson: str, kibana: Kibana) -> ImportResult:
    """Check Kibana's version, then import (overwriting objects with the same ids)."""
    version = kibana.version()
    if version < MINIMUM_KIBANA:
        need = ".".join(map(str, MINIMUM_KIBANA))
        raise KibanaError(f"Kibana {'.'.join(map(str, version))} at {kibana.base} is older than {need}, the oldest that reads these saved objects; upgrade Kibana to {need} or later")
    return kibana.import_objects(ndjson)


def _json(reply: urllib3.BaseHTTPResponse) -> Any:
    try:
        return json.loads(reply.data or b"null")
    except ValueError:
        return None


def _message(reply: urllib3.BaseHTTPResponse) -> str:
    body = _json(reply)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"HTTP {reply.status}"


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    # urllib3 wraps the socket error in its own words: keep the part a person recognises.
    match = re.search(r"\[Errno -?\d+\] ([^')\]]+)", text)
    return match.group(1) if match else text.split(": ", 1)[-1][:200]
