"""What the Elasticsearch session store and run store share: the client built from a config,
failures turned into one clear StoreError, point-in-time scans and daily index templates."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import TransportError
from elasticsearch import ApiError, AuthenticationException, AuthorizationException, Elasticsearch, NotFoundError
from elasticsearch.serializer import OrjsonSerializer

from ..errors import StoreError
from .elastic_config import ElasticConfig

PAGE = 500
KEEP_ALIVE = "2m"
# Statuses the client itself retries at once (a node busy or briefly away); a cluster that
# stays away is waited for by the store's writes, which then name what was not stored.
RETRY_ON_STATUS = (429, 502, 503, 504)


def connect_client(config: ElasticConfig) -> Elasticsearch:
    """The client for a config (no request is made yet)."""
    options: dict[str, Any] = {
        "request_timeout": config.request_timeout,
        "max_retries": 2,
        "retry_on_status": RETRY_ON_STATUS,
        "retry_on_timeout": True,
        "serializer": OrjsonSerializer(),  # several times faster than json for bulk bodies
    }
    if config.user:
        # Encoded here: the client would encode a (user, password) pair as ASCII only.
        options["basic_auth"] = base64.b64encode(f"{config.user}:{config.password or ''}".encode()).decode()
    if config.api_key:
        options["api_key"] = config.api_key
    if config.base_url.startswith("https:"):
        if config.ca_certs:
            if not os.path.exists(config.ca_certs):
                raise StoreError(f"CA certificate {config.ca_certs} does not exist; pass the PEM file that signed Elasticsearch's certificate")
            options["ca_certs"] = config.ca_certs
        options["verify_certs"] = config.verify_certs
        if not config.verify_certs:
            options["ssl_show_warn"] = False
    return Elasticsearch(config.base_url, **options)


def store_error(exc: Exception, base_url: str) -> StoreError:
    """One sentence saying what went wrong with a request and what to do."""
    if isinstance(exc, AuthenticationException):
        return StoreError(f"Elasticsearch at {base_url} refused the credentials (401); check the user and password in --store or the API key")
    if isinstance(exc, AuthorizationException):
        return StoreError(f"Elasticsearch at {base_url} does not allow this ({exc.message}); use a user or API key with rights on the index")
    if isinstance(exc, TransportConnectionError):
        text = str(exc).upper()
        if "CERTIFICATE" in text or "SSL" in text:
            hint = "; for a self-signed certificate pass ca_certs=/path/ca.pem (or verify_certs=false) in --store"
        elif base_url.startswith("http:") and ("CLOSED CONNECTION WITHOUT RESPONSE" in text or "RESET" in text):
            hint = "; if the cluster serves HTTPS, write https:// in --store"
        else:
            hint = "; start it (koala es start) or check --store"
        return StoreError(f"cannot reach Elasticsearch at {base_url}: {reason(exc)}{hint}")
    if isinstance(exc, ApiError):
        return StoreError(f"Elasticsearch at {base_url} answered {exc.meta.status}: {reason(exc)}")
    return StoreError(f"Elasticsearch at {base_url} failed: {reason(exc)}")


def call(action: Callable[[], Any], base_url: str) -> Any:
    """Run one request; a failure becomes one StoreError."""
    try:
        return action()
    except (TransportError, ApiError) as exc:
        raise store_error(exc, base_url) from None


def passing(exc: Exception) -> bool:
    """A failure that goes away by itself: the cluster unreachable, restarting or overloaded."""
    if isinstance(exc, TransportError):
        return True
    status = getattr(getattr(exc, "meta", None), "status", None)
    return status in (408, 429) or (isinstance(status, int) and status >= 500)


def point_in_time_hits(
    client: Elasticsearch, index: str, query: dict[str, Any], sort: list[Any], *, source: bool | list[str] = True
) -> Iterator[dict[str, Any]]:
    """Every hit of a query, in sort order, through a point in time and search_after: bounded
    memory at any size, and a stable view while documents change. No index: no hits."""
    try:
        pit = client.open_point_in_time(index=index, keep_alive=KEEP_ALIVE)["id"]
    except NotFoundError:
        return
    try:
        after = None
        while True:
            body: dict[str, Any] = {"query": query, "sort": sort, "size": PAGE, "pit": {"id": pit, "keep_alive": KEEP_ALIVE}, "_source": source}
            if after is not None:
                body["search_after"] = after
            reply = client.search(**body)
            hits = reply["hits"]["hits"]
            pit = reply.get("pit_id", pit)
            yield from hits
            if len(hits) < PAGE:
                return
            after = hits[-1]["sort"]
    finally:
        try:
            client.close_point_in_time(id=pit)
        except (TransportError, ApiError):
            pass  # it expires by itself


def daily_template(alias: str, mappings: dict[str, Any]) -> dict[str, Any]:
    """A composable index template for daily indices `<alias>-YYYY.MM.DD`, all behind `alias`
    (one shard each; a replica once the cluster has a second node)."""
    return {
        "index_patterns": [f"{alias}-*"],
        "priority": 200,
        "template": {
            "aliases": {alias: {}},
            "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
            "mappings": mappings,
        },
    }


def reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        root = (error.get("root_cause") or [error])[0]
        return f"{root.get('type')}: {root.get('reason')}"
    return str(message)


def item_reason(info: dict[str, Any]) -> str:
    """Why a bulk item failed, as Elasticsearch said it."""
    error = info.get("error")
    if isinstance(error, dict):
        caused = error.get("caused_by", {})
        detail = f" ({caused.get('type')}: {caused.get('reason')})" if caused else ""
        return f"Elasticsearch rejected it: {error.get('type')}: {error.get('reason')}{detail}"
    return f"Elasticsearch rejected it: {error or info.get('status')}"
