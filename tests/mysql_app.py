"""A small service with a MySQL-protocol dependency, for recording and replay tests.

    python tests/mysql_app.py --port 8080 --db 127.0.0.1:3306 --user shop --password pw --database shop

One PyMySQL connection, opened at the first request and reused by every request behind a
lock (a pool of one), so its opening (greeting, authentication, session set-up) is recorded
in the first session that used the database only.

GET  /items/<id>   SELECT name, qty FROM items WHERE id = <id>: 200 {"id", "name", "qty"} or 404
POST /items        JSON {"name", "qty"}: INSERT; 201 {"id"}
GET  /count        SELECT COUNT(*), SUM(qty) FROM items: 200 {"items", "qty"}
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import ThreadingHTTPServer

from json_handler import JsonHandler

import pymysql

ARGS: argparse.Namespace
_lock = threading.Lock()
_connection: pymysql.connections.Connection | None = None


def query(sql: str, args: tuple = ()) -> tuple[list[tuple], int]:
    """Rows and lastrowid, on the one shared connection."""
    global _connection
    with _lock:
        if _connection is None:
            host, port = ARGS.db.rsplit(":", 1)
            _connection = pymysql.connect(host=host, port=int(port), user=ARGS.user, password=ARGS.password, database=ARGS.database, autocommit=True, connect_timeout=5)
        with _connection.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall()), cursor.lastrowid


class Handler(JsonHandler):

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts[0] == "items" and len(parts) == 2 and parts[1].isdigit():
            rows, _ = query("SELECT name, qty FROM items WHERE id = %s", (int(parts[1]),))
            if not rows:
                self.answer(404, {"error": "no such item"})
            else:
                self.answer(200, {"id": int(parts[1]), "name": rows[0][0], "qty": rows[0][1]})
        elif parts[0] == "count":
            rows, _ = query("SELECT COUNT(*), COALESCE(SUM(qty), 0) FROM items")
            self.answer(200, {"items": rows[0][0], "qty": int(rows[0][1])})
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        _, new_id = query("INSERT INTO items (name, qty) VALUES (%s, %s)", (body["name"], int(body["qty"])))
        self.answer(201, {"id": new_id})


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--user", default="shop")
    parser.add_argument("--password", default="shop-pw")
    parser.add_argument("--database", default="shop")
    ARGS = parser.parse_args()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
