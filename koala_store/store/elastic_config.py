"""What an Elasticsearch store URL and the environment say, parsed once, without any I/O;
and the redaction every message that shows a store URL goes through.

`http(s)://[user:password@]host:port[?index=&prefix=&api_key=&ca_certs=&verify_certs=&retry_for=]`;
$KOALA_ES_USER/$KOALA_ES_PASSWORD, $KOALA_ES_API_KEY, $KOALA_ES_CA_CERT and $KOALA_ES_VERIFY do
the same without secrets in URLs. One way to log in, the most specific first: an API key given
as an option or in the URL, a user in the URL, then the environment's API key, then its user.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from msgspec import Struct

from ..errors import StoreError

KNOWN_PARAMS = ("index", "prefix", "api_key", "ca_certs", "verify_certs", "retry_for")
_SECRET_PARAM = re.compile(r"((?:^|[?&;\s])api_key=)[^&\s]*", re.I)


def redact(url: str) -> str:
    """The URL with its user information and API key replaced by `***`, however malformed:
    everything before the last `@` of the authority is taken as user information (a password
    may hold unencoded `/`, `#`, `?` or `@`)."""
    text = _SECRET_PARAM.sub(r"\1***", url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"


_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s'\"]*@", re.I)
_SECRET_ENV = ("KOALA_ES_PASSWORD", "KOALA_ES_API_KEY")


def scrub(message: str) -> str:
    """Any text with user information in URLs, API keys and the environment's secrets
    replaced by `***` (the last guard before a message is printed)."""
    text = _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", message))
    for name in _SECRET_ENV:
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class ElasticConfig(Struct, kw_only=True):
    """Everything needed to reach one Elasticsearch store, with secrets kept out of `url`."""

    base_url: str  # scheme://host:port, no user information
    url: str  # what messages show: base_url plus index/prefix when not the default
    index: str | None = None
    prefix: str = "koala"
    user: str | None = None
    password: str | None = None
    api_key: str | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    retry_for: float = 60.0  # seconds writes wait for an unreachable cluster
    request_timeout: float = 30.0


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off")


def parse_config(
    url: str,
    env: Mapping[str, str] | None = None,
    *,
    index: str | None = None,
    prefix: str | None = None,
    api_key: str | None = None,
    ca_certs: str | None = None,
    verify_certs: bool | None = None,
    retry_for: float | None = None,
    request_timeout: float = 30.0,
) -> ElasticConfig:
    """The config a URL and the environment describe; a URL that cannot be read is one
    StoreError that names it (redacted) and says what to write."""
    env = os.environ if env is None else env
    shown = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        # The exception's own text may quote part of a password: say what is wrong instead.
        what = "the [ ] around its IPv6 address do not match" if "IPv6" in str(exc) else "its port is not a number from 1 to 65535"
        raise StoreError(
            f"store URL {shown!r} cannot be read: {what}; write http(s)://[user:password@]host:port, and percent-encode / # ? @ in a password"
        ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise StoreError(f"store URL {shown!r} names no Elasticsearch host; write http(s)://host:port")
    if parts.fragment or (parts.path not in ("", "/")):
        raise StoreError(
            f"store URL {shown!r} has a path or '#' after the host; write http(s)://host:port?index=NAME, and percent-encode / # ? @ in a password"
        )
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in KNOWN_PARAMS:
            raise StoreError(f"store URL {shown!r} has an unknown parameter {key!r}; known: {', '.join(KNOWN_PARAMS)}")
        params[key] = value
    if retry_for is None:
        text = params.get("retry_for", "60")
        try:
            retry_for = float(text)
        except ValueError:
            retry_for = -1.0
        if not math.isfinite(retry_for) or retry_for < 0:
            raise StoreError(f"retry_for={text!r} in store URL {shown!r} is not a number of seconds; write e.g. retry_for=60")
    port = port or (443 if parts.scheme == "https" else 9200)
    base_url = f"{parts.scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
    index = index or params.get("index") or None
    prefix = prefix or params.get("prefix") or "koala"
    api_key = api_key or params.get("api_key") or None
    user = password = None
    if not api_key and parts.username:
        user, password = unquote(parts.username), unquote(parts.password or "")
    elif not api_key and env.get("KOALA_ES_API_KEY"):
        api_key = env["KOALA_ES_API_KEY"]
    elif not api_key and env.get("KOALA_ES_USER"):
        user, password = env["KOALA_ES_USER"], env.get("KOALA_ES_PASSWORD", "")
    if verify_certs is None:
        verify_certs = _truthy(params.get("verify_certs", env.get("KOALA_ES_VERIFY", "true")))
    shown_params = {"index": index} if index else ({"prefix": prefix} if prefix != "koala" else {})
    return ElasticConfig(
        base_url=base_url,
        url=base_url + "".join(f"{'?' if i == 0 else '&'}{k}={v}" for i, (k, v) in enumerate(shown_params.items())),
        index=index,
        prefix=prefix,
        user=user,
        password=password,
        api_key=api_key,
        ca_certs=ca_certs or params.get("ca_certs") or env.get("KOALA_ES_CA_CERT") or None,
        verify_certs=verify_certs,
        retry_for=retry_for,
        request_timeout=request_timeout,
    )
