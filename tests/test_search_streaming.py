"""`koala sessions search` streams (issue 11 item 11): memory does not grow with the number of
matches, and `--limit 0` lists them all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import koala_store.cli.sessions as sessions_cli

from cli_helpers import koala
from factories import varied_sessions
from koala_store.store import open_store


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'k.db'}"
    store = open_store(url)
    store.put_many(varied_sessions(20_000, payload=4096))
    store.refresh()
    store.close()
    return url


def peak_rss_kib(*args: str) -> tuple[int, int]:
    """(exit code, peak resident memory in KiB) of one CLI run, output thrown away."""
    child = subprocess.Popen([sys.executable, "-m", "koala_store", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_memory_does_not_grow_with_the_matches(big_store: str, as_json: bool) -> None:
    extra = ["--json"] if as_json else []
    code, few = peak_rss_kib("sessions", "search", "*", "--limit", "100", *extra, "--store", big_store)
    assert code == 0
    code, all_of_them = peak_rss_kib("sessions", "search", "*", "--limit", "0", *extra, "--store", big_store)
    assert code == 0
    # 20 000 sessions of ~4 KB held at once would add well over 80 MB.
    assert all_of_them - few < 30 * 1024, (few, all_of_them)


def test_limit_zero_lists_every_match(capsys, big_store: str) -> None:
    run = koala(capsys, "sessions", "search", "inbound.method:POST", "--limit", "0", "--json", "--store", big_store)
    assert run.code == 0
    assert len([orjson.loads(line) for line in run.out.splitlines()]) == 4000
    run = koala(capsys, "sessions", "search", "inbound.method:POST", "--limit", "0", "--store", big_store)
    assert run.code == 0 and len(run.out.splitlines()) == 4001 and run.err.strip() == "4000 sessions match"
    run = koala(capsys, "sessions", "search", "inbound.method:POST", "--store", big_store)
    assert len(run.out.splitlines()) == 21 and "4000 sessions match; showing the first 20 (--limit)" in run.err


def test_a_listing_counts_its_matches_only_up_to_a_bound(capsys, big_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """As Kibana shows "10,000+ hits": the listing says "more than N" rather than count a
    million matches of a common word after printing its first page."""
    monkeypatch.setattr(sessions_cli, "COUNTED", 1000)
    run = koala(capsys, "sessions", "search", "inbound.method:POST", "--store", big_store)
    assert run.code == 0 and len(run.out.splitlines()) == 21
    assert run.err.strip() == "more than 1,000 sessions match; showing the first 20 (--limit)"
    monkeypatch.setattr(sessions_cli, "COUNTED", 4000)  # exactly the bound: still exact
    assert "4000 sessions match; showing the first 20" in koala(capsys, "sessions", "search", "inbound.method:POST", "--store", big_store).err


def test_the_table_lines_up(capsys, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    store = open_store(url)
    store.put_many(varied_sessions(5))
    store.close()
    run = koala(capsys, "sessions", "search", "--store", url)
    header, *rows = run.out.splitlines()
    assert header.split() == ["session", "id", "recorded", "at", "(UTC)", "method", "path", "status", "out", "ms"]
    assert rows[1].split() == ["1763780401000000000-1001", "2025-11-22", "03:00:01", "POST", "/v1/order", "201", "2", "5.0"]
    assert len({row.index("2025-11-22") for row in rows}) == 1  # columns line up
