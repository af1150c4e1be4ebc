"""The demo service under test: a small shop API over Redis and a downstream HTTP service.

    python examples/demo/service.py --port 8080 --redis 127.0.0.1:16379 \\
        --downstream http://127.0.0.1:18081 [--build v1|v2]

GET  /health               200, touches nothing (no Redis, no downstream)
GET  /users/<id>           Redis cache `user:<id>`; on a miss GET downstream /profiles/<id>
                           and cache it (SET ... EX 300); 404 when the profile does not exist
GET  /quote?item=X&qty=N   GET downstream /prices?item=X; total with 10% off from 10 items
POST /orders               JSON {"user_id", "item", "qty"}: price from downstream, INCR
                           orders:next_id for the id, SET order:<id>, INCRBY sales:<item>; 201
GET  /orders/<id>          Redis `order:<id>`; 404 when missing

Every answer is JSON with "served_at" (unix seconds), the one volatile value, so a replay
diff has noise to ignore. Everything else is deterministic: ids come from the Redis counter.

`--build v2` is the changed build with four real regressions, one per endpoint, each marked
`REGRESSION (v2)` below:
  GET /users/<id>    missing field: "email" is no longer in the response
  GET /quote         changed value: the bulk discount is forgotten (total = unit * qty)
  POST /orders       lost write: INCRBY sales:<item> is no longer sent to Redis
  GET /orders/<id>   changed status: a missing order answers 200 instead of 404
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from urllib.parse import quote as url_quote

import redis

CACHE_TTL_S = 300
BULK_QTY = 10  # from this many items on, 10% off


def order_total(unit_cents: int, qty: int) -> int:
    """The price of `qty` items, with the bulk discount (rounded down to a cent)."""
    total = unit_cents * qty
    return total * 9 // 10 if qty >= BULK_QTY else total


class DownstreamError(Exception):
    """The downstream service could not be reached or answered garbage."""


class Shop:
    """The service's logic, independent of the HTTP plumbing."""

    def __init__(self, redis_addr: str, downstream: str, build: str) -> None:
        host, _, port = redis_addr.rpartition(":")
        # One client for the process: redis-py keeps a connection pool, so consecutive
        # requests reuse one long-lived connection. It connects lazily, at the first command.
        self.redis = redis.Redis(host=host, port=int(port), decode_responses=True, socket_timeout=5)
        self.downstream = downstream.rstrip("/")
        self.build = build

    def fetch(self, path: str) -> tuple[int, dict[str, Any]]:
        """GET a downstream path; (status, JSON body). 4xx answers are results, not errors."""
        try:
            with urllib.request.urlopen(self.downstream + path, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read() or b"{}")
        except (OSError, ValueError) as exc:
            raise DownstreamError(f"downstream {path}: {exc}") from exc

    def get_user(self, user_id: int) -> tuple[int, dict[str, Any]]:
        cached = self.redis.get(f"user:{user_id}")
        if cached is not None:
            profile, was_cached = json.loads(cached), True
        else:
            status, profile = self.fetch(f"/profiles/{user_id}")
            if status == 404:
                return 404, {"error": "user not found"}
            if status != 200:
                raise DownstreamError(f"downstream /profiles answered {status}")
            self.redis.set(f"user:{user_id}", json.dumps(profile), ex=CACHE_TTL_S)
            was_cached = False
        body = {**profile, "cached": was_cached}
        if self.build == "v2":
            # REGRESSION (v2): missing field - the profile is answered without its email.
            body.pop("email", None)
        return 200, body

    def price(self, item: str) -> int | None:
        status, body = self.fetch(f"/prices?item={url_quote(item)}")
        if status == 404:
            return None
        if status != 200:
            raise DownstreamError(f"downstream /prices answered {status}")
        return int(body["unit_cents"])

    def quote(self, item: str, qty: int) -> tuple[int, dict[str, Any]]:
        unit = self.price(item)
        if unit is None:
            return 404, {"error": "unknown item"}
        total = order_total(unit, qty)
        if self.build == "v2":
            # REGRESSION (v2): changed value - the total is computed inline and forgets the
            # bulk discount, so quotes for 10 or more items come out 10% too high.
            total = unit * qty
        return 200, {"item": item, "qty": qty, "unit_cents": unit, "total_cents": total}

    def create_order(self, order: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            user_id, item, qty = int(order["user_id"]), str(order["item"]), int(order["qty"])
        except (KeyError, TypeError, ValueError):
            return 400, {"error": 'expected {"user_id": int, "item": str, "qty": int}'}
        if qty < 1:
            return 400, {"error": "qty must be at least 1"}
        unit = self.price(item)
        if unit is None:
            return 422, {"error": "unknown item"}
        order_id = self.redis.incr("orders:next_id")
        record = {
            "id": order_id,
            "user_id": user_id,
            "item": item,
            "qty": qty,
            "unit_cents": unit,
            "total_cents": order_total(unit, qty),
            "created_at": int(time.time()),
        }
        self.redis.set(f"order:{order_id}", json.dumps(record))
        if self.build != "v2":
            # REGRESSION (v2): lost write - v2 no longer counts sales per item.
            self.redis.incrby(f"sales:{item}", qty)
        return 201, record

    def get_order(self, order_id: int) -> tuple[int, dict[str, Any]]:
        stored = self.redis.get(f"order:{order_id}")
        if stored is None:
            if self.build == "v2":
                # REGRESSION (v2): changed status - a missing order answers 200, not 404.
                return 200, {"error": "order not found"}
            return 404, {"error": "order not found"}
        return 200, json.loads(stored)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients may send several requests per connection
    server: ShopServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        shop = self.server.shop
        if url.path == "/health":
            self._answer(200, {"status": "ok"})  # must not touch Redis: used as a liveness probe
        elif len(parts) == 2 and parts[0] == "users" and parts[1].isdigit():
            self._call(shop.get_user, int(parts[1]))
        elif len(parts) == 2 and parts[0] == "orders" and parts[1].isdigit():
            self._call(shop.get_order, int(parts[1]))
        elif url.path == "/quote":
            query = parse_qs(url.query)
            item, qty = query.get("item", [""])[0], query.get("qty", ["1"])[0]
            if not item or not qty.isdigit() or int(qty) < 1:
                self._answer(400, {"error": "expected ?item=NAME&qty=N"})
            else:
                self._call(shop.quote, item, int(qty))
        else:
            self._answer(404, {"error": "no such endpoint"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urlsplit(self.path).path != "/orders":
            self._answer(404, {"error": "no such endpoint"})
            return
        try:
            order = json.loads(body)
        except ValueError:
            self._answer(400, {"error": "body is not JSON"})
            return
        if not isinstance(order, dict):
            self._answer(400, {"error": "body must be a JSON object"})
            return
        self._call(self.server.shop.create_order, order)

    def _call(self, fn: Any, *args: Any) -> None:
        """Run one endpoint's logic, turning dependency failures into 502/503 answers."""
        try:
            status, body = fn(*args)
        except redis.RedisError as exc:
            status, body = 503, {"error": f"redis: {exc}"}
        except DownstreamError as exc:
            status, body = 502, {"error": str(exc)}
        self._answer(status, body)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps({**body, "served_at": int(time.time())}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class ShopServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], shop: Shop) -> None:
        super().__init__(addr, Handler)
        self.shop = shop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, metavar="HOST:PORT")
    parser.add_argument("--downstream", required=True, metavar="URL")
    parser.add_argument("--build", choices=("v1", "v2"), default="v1")
    args = parser.parse_args()
    server = ShopServer((args.host, args.port), Shop(args.redis, args.downstream, args.build))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
