"""Realistic recorded sessions and the drifted live calls a replay makes, for bench_matchers.

An order service is simulated twice with the same business inputs: once while recording
(January 2019) and once during replay (months later, in another environment). Its handlers
call MySQL and Redis over long-lived pooled connections shared by consecutive sessions
(greeting + handshake only when the pool opens a connection), a user service over a
keep-alive HTTP connection and a price service with one connection per call (its fd number
is reused, as the kernel does). What drifts between the runs is only what drifts in real
replays, as the issue lists:

- Host carries other ports (the replay environment's addresses);
- ids: X-Request-Id, traceparent, request_id in bodies, nonces and signatures, snowflake
  order ids (in SQL and Redis keys), lock tokens, the MySQL auth scramble;
- timestamps: epoch seconds/ms in queries and bodies, Date headers, SQL datetimes,
  daily counter keys;
- query parameters built from maps come out in another order (Go randomises map order);
- long-lived connections: consecutive sessions share them, so the replay runner must carry
  a connection's state from one session to the next.

Business inputs (users, cities, items, quantities) and everything the service reads from
its dependencies are the same in both runs, so each live call has exactly one true recorded
call: the one the same code path produced while recording. Nothing here knows about the
matchers; the data is generated first, then every strategy is scored on it.
"""

from __future__ import annotations

import hashlib
import random
import string
import time
from dataclasses import dataclass, field

import orjson

from koala_store.model import CallOutbound, Peer

MYSQL = Peer(ip="10.0.0.7", port=3306)
REDIS = Peer(ip="10.0.0.8", port=6379)
USER_SVC = Peer(ip="10.0.0.5", port=8000)
PRICE_SVC = Peer(ip="10.0.0.6", port=8080)
RECORD_EPOCH = 1548160113  # 2019-01-22
REPLAY_EPOCH = 1563000000  # 2019-07-13: replays happen months later
ALNUM = string.ascii_letters + string.digits


# --- wire helpers -----------------------------------------------------------------------


def resp_command(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def resp_bulk(value: str | None) -> bytes:
    if value is None:
        return b"$-1\r\n"
    b = value.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


def mysql_packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def mysql_query(sql: str) -> bytes:
    return mysql_packet(0, b"\x03" + sql.encode())


def mysql_ok(affected: int = 0, insert_id: int = 0) -> bytes:
    return mysql_packet(1, bytes([0, affected & 0x7F, insert_id & 0x7F, 2, 0, 0, 0]))


def mysql_rows(columns: list[str], rows: list[list[str]]) -> bytes:
    """A text resultset, close enough to the wire for matching (matchers never parse it)."""
    seq = 1
    out = [mysql_packet(seq, bytes([len(columns)]))]
    for c in columns:
        seq += 1
        out.append(mysql_packet(seq, b"\x03def\x06orders" + bytes([len(c)]) + c.encode()))
    for r in rows:
        seq += 1
        out.append(mysql_packet(seq, b"".join(bytes([len(v)]) + v.encode() for v in r)))
    seq += 1
    out.append(mysql_packet(seq, b"\xfe\x00\x00\x02\x00"))
    return b"".join(out)


def mysql_greeting(rng: random.Random) -> bytes:
    scramble = bytes(rng.randrange(33, 127) for _ in range(20))
    payload = (
        b"\x0a5.7.16-log\x00"
        + rng.randrange(1, 1 << 31).to_bytes(4, "little")
        + scramble[:8]
        + b"\x00\xff\xf7\x21\x02\x00\xff\x81\x15"
        + b"\x00" * 10
        + scramble[8:]
        + b"\x00mysql_native_password\x00"
    )
    return mysql_packet(0, payload)


def mysql_handshake_response(rng: random.Random) -> bytes:
    caps = 0x0008 | 0x0200 | 0x8000 | 0x80000 | 0x200000 | 0x1 | 0x4
    auth = bytes(rng.randrange(256) for _ in range(20))  # scramble-derived: new every time
    payload = (
        caps.to_bytes(4, "little")
        + (16 << 20).to_bytes(4, "little")
        + b"\x2d"
        + bytes(23)
        + b"order_rw\x00"
        + bytes([len(auth)])
        + auth
        + b"orders\x00mysql_native_password\x00"
    )
    return mysql_packet(1, payload)


def http_request(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_response(payload: dict) -> bytes:
    body = orjson.dumps(payload)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


# --- the two environments -----------------------------------------------------------------


@dataclass
class Env:
    """What differs between recording and replay: clocks, addresses, random ids, map order."""

    name: str
    epoch: int
    hosts: dict[Peer, str]
    rng: random.Random  # volatile values only; business inputs come from elsewhere
    clock: float = 0.0
    snowflake_seq: int = 0

    def now(self) -> float:
        return self.epoch + self.clock

    def tick(self, seconds: float) -> None:
        self.clock += seconds

    def ms(self) -> int:
        return int(self.now() * 1000)

    def iso(self, offset: float = 0) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.now() + offset))

    def day(self) -> str:
        return time.strftime("%Y%m%d", time.gmtime(self.now()))

    def http_date(self) -> str:
        return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(self.now()))

    def uuid(self) -> str:
        h = "%032x" % self.rng.getrandbits(128)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def hex(self, n: int) -> str:
        return "%0*x" % (n, self.rng.getrandbits(4 * n))

    def token(self, n: int) -> str:
        return "".join(self.rng.choice(ALNUM) for _ in range(n))

    def snowflake(self) -> int:
        self.snowflake_seq = (self.snowflake_seq + 1) & 0xFFF
        return ((self.ms() - 1288834974657) << 22) | (7 << 12) | self.snowflake_seq

    def query(self, params: dict[str, str], *, from_map: bool) -> str:
        items = list(params.items())
        if from_map:
            self.rng.shuffle(items)  # Go's map iteration order is random on every run
        return "&".join(f"{k}={v}" for k, v in items)

    def trace_headers(self) -> list[tuple[str, str]]:
        return [("X-Request-Id", self.uuid()), ("traceparent", f"00-{self.hex(32)}-{self.hex(16)}-01")]


@dataclass
class Talk:
    conn: str  # the live connection it goes over (a pooled one keeps its name across sessions)
    peer: Peer
    fd: int
    request: bytes
    response: bytes
    greeting: bool = False


@dataclass
class Pool:
    """Which connections are open; the service keeps them across sessions."""

    open: dict[str, int] = field(default_factory=dict)  # conn name -> fd
    generation: dict[str, int] = field(default_factory=dict)
    next_fd: int = 9
    price_fd: int = 0


@dataclass
class LiveCall:
    request: bytes
    truth: int  # position of the recorded call this one re-enacts
    conn: str
    peer: str
    greeting: bool


@dataclass
class Case:
    calls: list[CallOutbound]
    live: list[LiveCall]
    kind: str


# --- the service ----------------------------------------------------------------------------

USERS = list(range(1001, 1061))
SKUS = [f"SKU{n:04d}" for n in range(1, 41)]
PRICES = {sku: round(3 + (i * 7.31) % 40, 2) for i, sku in enumerate(SKUS)}


@dataclass
class Inputs:
    """One inbound request and the state of the world it met: identical in both runs."""

    kind: str
    uid: int
    city: int
    items: list[tuple[str, int]]
    cached: bool
    orders: list[int]
    reconnect_mysql: bool
    reconnect_user_svc: bool
    page: int


class Service:
    def __init__(self, env: Env, pool: Pool):
        self.env = env
        self.pool = pool
        self.talks: list[Talk] = []

    # connections

    def _conn(self, name: str, reconnect: bool) -> tuple[str, int, bool]:
        """(conn id, fd, opened now) of a pooled connection."""
        pool = self.pool
        if reconnect or name not in pool.open:
            pool.generation[name] = pool.generation.get(name, 0) + 1
            pool.open[name] = pool.next_fd
            pool.next_fd += 1
            return f"{name}/{pool.generation[name]}", pool.open[name], True
        return f"{name}/{pool.generation[name]}", pool.open[name], False

    def mysql(self, sql: str, response: bytes, inputs: Inputs) -> None:
        conn, fd, opened = self._conn("mysql", inputs.reconnect_mysql)
        inputs.reconnect_mysql = False
        if opened:
            env = self.env
            self.talks.append(Talk(conn, MYSQL, fd, b"", mysql_greeting(env.rng), greeting=True))
            self.talks.append(Talk(conn, MYSQL, fd, mysql_handshake_response(env.rng), mysql_packet(2, b"\x00\x00\x00\x02\x00\x00\x00")))
            self.talks.append(Talk(conn, MYSQL, fd, mysql_query("SET NAMES utf8mb4"), mysql_ok()))
            self.talks.append(Talk(conn, MYSQL, fd, mysql_query("SET autocommit=1"), mysql_ok()))
        self.talks.append(Talk(conn, MYSQL, fd, mysql_query(sql), response))
        self.env.tick(0.002)

    def redis(self, args: list[str], response: bytes) -> None:
        conn, fd, _ = self._conn("redis", False)
        self.talks.append(Talk(conn, REDIS, fd, resp_command(*args), response))
        self.env.tick(0.0005)

    def user_svc(self, method: str, target: str, response: dict, inputs: Inputs, body: bytes = b"") -> None:
        conn, fd, _ = self._conn("user-svc", inputs.reconnect_user_svc)
        inputs.reconnect_user_svc = False
        env = self.env
        headers = [
            ("Host", env.hosts[USER_SVC]),
            ("User-Agent", "order-svc/2.3.1"),
            ("Accept", "application/json"),
            *env.trace_headers(),
        ]
        if body:
            headers.append(("Content-Type", "application/json"))
        self.talks.append(Talk(conn, USER_SVC, fd, http_request(method, target, headers, body), http_response(response)))
        env.tick(0.01)

    def price_svc(self, body: dict, response: dict) -> None:
        # One connection per call; the kernel hands out the same fd number each time.
        pool = self.pool
        pool.price_fd += 1
        env = self.env
        raw = orjson.dumps(body)
        headers = [
            ("Host", env.hosts[PRICE_SVC]),
            ("User-Agent", "order-svc/2.3.1"),
            ("Content-Type", "application/json"),
            ("Date", env.http_date()),
            *env.trace_headers(),
        ]
        conn = f"price/{pool.price_fd}"
        self.talks.append(Talk(conn, PRICE_SVC, 40, http_request("POST", "/v1/price/estimate", headers, raw), http_response(response)))
        env.tick(0.008)

    # handlers (the code path depends only on the inputs, never on the environment)

    def load_profile(self, i: Inputs) -> None:
        key = f"user:{i.uid}:profile"
        profile = {"uid": i.uid, "name": f"user{i.uid}", "level": i.uid % 4, "city": i.city}
        if i.cached:
            self.redis(["GET", key], resp_bulk(orjson.dumps(profile).decode()))
            return
        self.redis(["GET", key], resp_bulk(None))
        self.mysql(
            f"SELECT id, name, phone, level, city FROM user WHERE id = {i.uid} LIMIT 1",
            mysql_rows(["id", "name", "phone", "level", "city"], [[str(i.uid), f"user{i.uid}", f"1380000{i.uid}", str(i.uid % 4), str(i.city)]]),
            i,
        )
        self.redis(["SET", key, orjson.dumps(profile).decode(), "EX", "3600"], b"+OK\r\n")

    def config(self, i: Inputs) -> None:
        self.redis(["GET", f"config:city:{i.city}"], resp_bulk(orjson.dumps({"city": i.city, "surge": 1.2}).decode()))

    def create_order(self, i: Inputs) -> None:
        env = self.env
        self.load_profile(i)
        params = {"uid": str(i.uid), "city": str(i.city), "ts": str(int(env.now())), "nonce": env.token(12)}
        params["sign"] = hashlib.md5("&".join(f"{k}={params[k]}" for k in sorted(params)).encode()).hexdigest()
        self.user_svc("GET", "/v1/user/risk?" + env.query(params, from_map=True), {"errno": 0, "risk": 0}, i)
        amount = 0.0
        for sku, qty in i.items:
            price = PRICES[sku]
            amount += price * qty
            self.price_svc(
                {"uid": i.uid, "city": i.city, "sku": sku, "qty": qty, "request_id": env.uuid(), "ts": env.ms()},
                {"errno": 0, "sku": sku, "price": price},
            )
        order_id = env.snowflake()
        lock = f"lock:order:{order_id}"
        self.redis(["SET", lock, env.token(16), "NX", "EX", "10"], b"+OK\r\n")
        self.mysql("BEGIN", mysql_ok(), i)
        self.mysql(
            f"INSERT INTO orders (id, uid, city, amount, status, created_at) VALUES ({order_id}, {i.uid}, {i.city}, {amount:.2f}, 0, '{env.iso()}')",
            mysql_ok(1),
            i,
        )
        for sku, qty in i.items:
            self.mysql(
                f"INSERT INTO order_items (order_id, sku, qty, price) VALUES ({order_id}, '{sku}', {qty}, {PRICES[sku]})",
                mysql_ok(1),
                i,
            )
        self.mysql("COMMIT", mysql_ok(), i)
        self.redis(["DEL", lock], b":1\r\n")
        # REST paths carry ids too.
        self.user_svc(
            "POST",
            f"/v1/user/{i.uid}/orders/{order_id}/notify",
            {"errno": 0},
            i,
            orjson.dumps({"channel": "push", "at": env.ms(), "amount": round(amount, 2)}),
        )
        self.redis(["INCR", f"stat:orders:{env.day()}"], b":%d\r\n" % (i.uid % 97))

    def list_orders(self, i: Inputs) -> None:
        env = self.env
        self.load_profile(i)
        self.config(i)
        self.mysql(
            "SELECT id, city, amount, status, created_at FROM orders "
            f"WHERE uid = {i.uid} AND created_at > '{env.iso(-30 * 86400)}' ORDER BY id DESC LIMIT {i.page * 20}, 20",
            mysql_rows(["id", "amount"], [[str(o), f"{(o % 500) / 10:.2f}"] for o in i.orders]),
            i,
        )
        for order in i.orders:
            self.redis(["HGETALL", f"order:{order}:status"], b"*2\r\n$6\r\nstatus\r\n$1\r\n%d\r\n" % (order % 4))
        self.user_svc(
            "GET",
            "/v1/user/profile?" + env.query({"uid": str(i.uid), "fields": "name,level,avatar", "lang": "zh-CN"}, from_map=True),
            {"errno": 0, "name": f"user{i.uid}"},
            i,
        )
        self.config(i)  # a second code path reads the same config: identical duplicate call

    def profile(self, i: Inputs) -> None:
        env = self.env
        self.user_svc("GET", f"/v1/config?city={i.city}&keys=banner,notice", {"banner": "spring"}, i)
        self.load_profile(i)
        self.redis(["EXPIRE", f"user:{i.uid}:profile", "3600"], b":1\r\n")
        self.mysql(
            f"SELECT COUNT(*) FROM orders WHERE uid = {i.uid} AND status = 2",
            mysql_rows(["count"], [[str(i.uid % 13)]]),
            i,
        )
        self.mysql(f"UPDATE user SET last_seen = '{env.iso()}' WHERE id = {i.uid}", mysql_ok(1), i)
        self.user_svc(
            "POST",
            "/v1/user/event",
            {"errno": 0},
            i,
            orjson.dumps({"uid": i.uid, "event": "profile_view", "at": env.ms(), "trace": env.hex(32)}),
        )
        self.user_svc("GET", f"/v1/config?city={i.city}&keys=banner,notice", {"banner": "spring"}, i)

    def estimate(self, i: Inputs) -> None:
        env = self.env
        self.config(i)
        for sku, qty in i.items:
            self.price_svc(
                {"uid": i.uid, "city": i.city, "sku": sku, "qty": qty, "request_id": env.uuid(), "ts": env.ms()},
                {"errno": 0, "sku": sku, "price": PRICES[sku]},
            )
        # The quote is cached under a fresh id with its creation time.
        self.redis(
            ["SET", f"quote:{env.uuid()}", orjson.dumps({"uid": i.uid, "items": i.items, "at": env.ms()}).decode(), "EX", "300"],
            b"+OK\r\n",
        )

    def handle(self, i: Inputs) -> list[Talk]:
        self.talks = []
        getattr(self, i.kind)(i)
        self.env.tick(1.7)
        return self.talks


# --- putting it together ----------------------------------------------------------------------


def _inputs(rng: random.Random, n: int) -> list[Inputs]:
    out = []
    for k in range(n):
        kind = rng.choices(["create_order", "list_orders", "profile", "estimate"], [35, 30, 20, 15])[0]
        count = rng.randint(1, 4) if kind == "create_order" else rng.randint(2, 6)
        items = [(rng.choice(SKUS), rng.randint(1, 3)) for _ in range(count)]
        if kind == "estimate" and rng.random() < 0.4:
            items.append(items[0])  # the app refreshes a quote: the same call twice
        out.append(
            Inputs(
                kind=kind,
                uid=rng.choice(USERS),
                city=rng.randint(1, 5),
                items=items,
                cached=rng.random() < 0.6,
                orders=[rng.randrange(10**6, 10**7) for _ in range(rng.randint(2, 5))],
                reconnect_mysql=k > 0 and rng.random() < 0.03,  # pool recycles a connection
                reconnect_user_svc=k > 0 and rng.random() < 0.05,  # keep-alive timeout
                page=rng.randint(0, 2),
            )
        )
    return out


def _copy(i: Inputs) -> Inputs:
    return Inputs(**{**i.__dict__, "items": list(i.items), "orders": list(i.orders)})


def drift_set(sessions: int = 300, seed: int = 20190122) -> list[Case]:
    """`sessions` recorded sessions (in order) with the live calls their replay makes."""
    world = random.Random(seed)
    inputs = _inputs(world, sessions)
    record = Env(
        "record",
        RECORD_EPOCH,
        {USER_SVC: "10.0.0.5:8000", PRICE_SVC: "10.0.0.6:8080"},
        random.Random(seed + 1),
    )
    replay = Env(
        "replay",
        REPLAY_EPOCH,
        {USER_SVC: "10.0.0.5:18000", PRICE_SVC: "10.0.0.6:18080"},  # the replay environment's ports
        random.Random(seed + 2),
    )
    rec_service, live_service = Service(record, Pool()), Service(replay, Pool())
    cases = []
    for i in inputs:
        recorded = rec_service.handle(_copy(i))
        live = live_service.handle(_copy(i))
        assert [t.conn for t in recorded] == [t.conn for t in live]
        base_ns = int(record.now() * 1e9)
        calls = [
            CallOutbound(
                action_index=n + 1,
                occurred_at=base_ns + n * 1000,
                request=t.request,
                response=t.response,
                peer=t.peer,
                socket_fd=t.fd,
                response_time=base_ns + n * 1000 + 500,
            )
            for n, t in enumerate(recorded)
        ]
        calls_live = [LiveCall(request=t.request, truth=n, conn=t.conn, peer=t.peer.address, greeting=t.greeting) for n, t in enumerate(live)]
        cases.append(Case(calls=calls, live=calls_live, kind=i.kind))
    return cases


# --- latency data: candidates of a given size ---------------------------------------------------

_ADJECTIVES = (
    "spicy sweet sour crispy fresh grilled steamed roasted smoked braised golden green red black white "
    "large small family classic special seasonal organic frozen iced hot mild double single premium "
    "homemade garden spring summer autumn winter northern southern eastern western"
).split()
_NOUNS = (
    "chicken noodles rice dumplings tofu beef pork fish shrimp soup salad bun pancake tea coffee juice "
    "milk cake bread sandwich burger pizza pasta curry sushi ramen wings ribs fries cola water lemonade "
    "yogurt mango apple peach melon grape orange banana cherry"
).split()


def _items(rng: random.Random, size: int) -> list[dict]:
    """Order lines until their JSON is about `size` bytes: what 1-8 KB bodies mostly hold."""
    items: list[dict] = []
    total = 2
    while total < size:
        item = {
            "sku": rng.choice(SKUS),
            "name": f"{rng.choice(_ADJECTIVES)} {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}",
            "qty": rng.randint(1, 5),
            "price": round(rng.uniform(2, 80), 2),
            "shop": rng.randint(10000, 99999),
        }
        items.append(item)
        total += len(orjson.dumps(item)) + 1
    return items


def sized_candidates(count: int, size: int, seed: int = 1) -> tuple[list[CallOutbound], list[bytes]]:
    """`count` recorded calls of about `size` bytes (HTTP JSON, SQL, Redis), and live drifted
    versions of them to match (one per candidate, in a shuffled order)."""
    rng = random.Random(seed)
    record = Env("record", RECORD_EPOCH, {USER_SVC: "10.0.0.5:8000", PRICE_SVC: "10.0.0.6:8080"}, random.Random(seed + 1))
    replay = Env("replay", REPLAY_EPOCH, {USER_SVC: "10.0.0.5:18000", PRICE_SVC: "10.0.0.6:18080"}, random.Random(seed + 2))
    endpoints = ["/v1/price/estimate", "/v1/order/create", "/v1/route/plan", "/v1/coupon/apply", "/v1/user/event"]
    calls, live = [], []
    for n in range(count):
        shape = n % 5
        uid = rng.choice(USERS)
        items = _items(rng, max(16, size - 330))
        pair = []
        for env in (record, replay):
            if shape < 3:
                body = orjson.dumps({"uid": uid, "city": n % 5, "request_id": env.uuid(), "ts": env.ms(), "items": items})
                headers = [
                    ("Host", env.hosts[PRICE_SVC]),
                    ("Content-Type", "application/json"),
                    *env.trace_headers(),
                ]
                req = http_request("POST", endpoints[n % len(endpoints)] + f"?city={n % 5}", headers, body)
                peer = PRICE_SVC
            elif shape == 3:
                order_id = env.snowflake()
                rows = ", ".join(f"({order_id}, '{it['sku']}', '{it['name']}', {it['qty']}, {it['price']}, '{env.iso()}')" for it in items)
                req = mysql_query(f"INSERT INTO order_items (order_id, sku, name, qty, price, created_at) VALUES {rows}")
                peer = MYSQL
            else:
                value = orjson.dumps({"at": env.ms(), "items": items}).decode()
                req = resp_command("SET", f"cart:{uid}:{n}", value, "EX", "600")
                peer = REDIS
            pair.append(req)
            env.tick(0.5)
        calls.append(CallOutbound(action_index=n + 1, occurred_at=n, request=pair[0], response=b"+OK\r\n", peer=peer, socket_fd=9 + shape))
        live.append(pair[1])
    order = list(range(count))
    rng.shuffle(order)
    return calls, [live[k] for k in order]
