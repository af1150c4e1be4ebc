"""The downstream HTTP service the demo service depends on: user profiles and item prices.

Stdlib only, fixed data, so a recording made against it is reproducible.

    python examples/demo/downstream.py --port 18081

GET /profiles/<id>     200 {"id", "name", "email", "tier"} or 404
GET /prices?item=NAME  200 {"item", "unit_cents"} or 404
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PROFILES: dict[int, dict[str, object]] = {
    1: {"id": 1, "name": "Alice Liddell", "email": "alice@example.com", "tier": "gold"},
    2: {"id": 2, "name": "Bob Marley", "email": "bob@example.com", "tier": "silver"},
    3: {"id": 3, "name": "Chen Wei", "email": "chen.wei@example.com", "tier": "bronze"},
    4: {"id": 4, "name": "Dana Scully", "email": "dana@example.com", "tier": "gold"},
}

PRICES: dict[str, int] = {"apple": 120, "banana": 45, "coffee": 899, "notebook": 350}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive capable, every answer has Content-Length

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/profiles/"):
            key = url.path.removeprefix("/profiles/")
            profile = PROFILES.get(int(key)) if key.isdigit() else None
            if profile is None:
                self._json(404, {"error": "no such profile"})
            else:
                self._json(200, profile)
        elif url.path == "/prices":
            item = parse_qs(url.query).get("item", [""])[0]
            if item in PRICES:
                self._json(200, {"item": item, "unit_cents": PRICES[item]})
            else:
                self._json(404, {"error": "unknown item"})
        else:
            self._json(404, {"error": "not found"})

    def _json(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: the recorder prints what matters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18081)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
