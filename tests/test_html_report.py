"""`koala report RUN`: the HTML file opened in headless Chromium (Debian's package): the key
numbers are on the page, nothing is fetched, nothing is logged to the console, the charts
draw, and a run of thousands of sessions pages. Screenshots go to each test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

import browser
from cli_helpers import koala
from koala_store.store.sqlite import SqliteStore
from run_factories import synthetic_run
from stores import ES_URL, drop_prefix, unique_prefix

needs_browser = pytest.mark.skipif(browser.missing() is not None, reason=f"no headless browser: {browser.missing()}")


def _check_demo_v2_page(html: Path, shots: Path) -> None:
    with browser.open_file(html) as opened:
        page = opened.page
        page.screenshot(path=str(shots / "summary.png"))
        assert page.inner_text("#count-total") == "25"
        assert page.inner_text("#count-same") == "12"
        assert page.inner_text("#count-different") == "13"
        assert page.inner_text("#count-error") == "0"
        users = page.locator("#endpoints tr", has_text="GET /users/{id}").inner_text().split("\t")
        assert users[:6] == ["GET /users/{id}", "8", "1", "7", "0", "88"]
        assert page.inner_text("#sessions-count") == "13"
        assert page.locator("details.session:visible").count() == 13
        # plotly drew each chart (an SVG inside each chart's div).
        for chart in ("verdicts", "paths", "latency"):
            assert page.locator(f"#chart-{chart} svg.main-svg").count() >= 1, chart
        assert "body.email" in page.inner_text("#chart-paths")
        first = page.locator("details.session", has_text="body.email").first
        first.locator("summary").click()
        first.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "session.png"))
        assert first.locator(".diff .del", has_text='"email": "alice@example.com"').count() == 1
        assert '"alice@example.com"' in first.locator("table.differences").inner_text()  # JSON notation
        assert "null" in first.locator("table.differences").inner_text()
        orders = page.locator("details.session", has_text="outbound[3]").first
        orders.locator("summary").click()
        assert "missed #3" in orders.locator("table.outbound").inner_text()
        assert "127.0.0.1:16379" in orders.locator("table.outbound").inner_text()
        assert opened.console_errors == []
        assert opened.fetched == []


@needs_browser
def test_the_demo_v2_report_from_sqlite(tmp_path: Path, capsys) -> None:
    pytest.importorskip("redis")
    from demo_runs import ingest_demo, replay_demo

    store = SqliteStore(tmp_path / "k.db")
    try:
        ingest_demo(store)
        replay_demo(store, "v2")
    finally:
        store.close()
    html = tmp_path / "report.html"
    run = koala(capsys, "report", "demo-v2", "-o", str(html), "--store", f"sqlite:///{tmp_path / 'k.db'}")
    assert run.code == 0, run.err
    assert f"wrote {html}" in run.err and "13 different" in run.err
    text = html.read_text()
    assert "<script src" not in text and "<link" not in text  # nothing to fetch
    assert text.count('Plotly.newPlot("chart-"') == 1 and text.count("plotly.js v") <= 2  # the library once
    _check_demo_v2_page(html, tmp_path)


@needs_browser
@pytest.mark.skipif(not ES_URL, reason="needs the local Elasticsearch: export KOALA_TEST_ES_URL (scripts/test.sh does)")
def test_the_demo_v2_report_from_elasticsearch(tmp_path: Path, capsys) -> None:
    pytest.importorskip("redis")
    from demo_runs import ingest_demo, replay_demo
    from koala_store.store.elastic import ElasticStore

    prefix = unique_prefix()
    store = ElasticStore(ES_URL, prefix=prefix)
    try:
        ingest_demo(store)
        store.refresh()
        replay_demo(store, "v2")
        html = tmp_path / "report.html"
        run = koala(capsys, "report", "demo-v2", "-o", str(html), "--store", f"{ES_URL}?prefix={prefix}")
        assert run.code == 0, run.err
        _check_demo_v2_page(html, tmp_path)
    finally:
        drop_prefix(store.client, prefix)
        store.close()


@needs_browser
def test_thousands_of_sessions_page_and_noise_is_listed(tmp_path: Path, capsys) -> None:
    summary, comparisons = synthetic_run(3000)
    store = SqliteStore(tmp_path / "k.db")
    try:
        store.runs.put_run(summary)
        store.runs.put_comparisons(comparisons)
    finally:
        store.close()
    differing = summary.different + summary.error
    html = tmp_path / "big.html"
    run = koala(capsys, "report", summary.name, "-o", str(html), "--store", f"sqlite:///{tmp_path / 'k.db'}")
    assert run.code == 0, run.err
    with browser.open_file(html) as opened:
        page = opened.page
        page.screenshot(path=str(tmp_path / "big.png"))
        assert page.inner_text("#count-total") == "3000"
        assert page.inner_text("#count-different") == str(summary.different)
        assert page.inner_text("#sessions-count") == str(differing)
        assert page.locator("details.session").count() == differing
        assert page.locator("details.session:visible").count() == 50
        pages = -(-differing // 50)
        assert page.inner_text("#page-label") == f"page 1 of {pages} ({differing} sessions)"
        page.click("#next")
        assert page.inner_text("#page-label").startswith("page 2 of")
        assert page.locator("details.session:visible").count() == 50
        page.select_option("#filter-endpoint", "GET /users/{id}")
        wanted = sum(1 for c in comparisons if c.endpoint == "GET /users/{id}" and c.verdict != "same")
        assert page.inner_text("#page-label") == f"page 1 of {-(-wanted // 50)} ({wanted} sessions)"
        assert set(page.locator("details.session:visible summary .endpoint").all_inner_texts()) == {"GET /users/{id}"}
        page.click("#expand")
        assert page.locator("details.session[open]").count() == min(50, wanted)
        noise = page.inner_text("#suppressed")
        assert "body.served_at" in noise and "--noise-runs" in noise
        assert opened.console_errors == [] and opened.fetched == []


def test_report_errors_are_one_clear_sentence(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    absent = koala(capsys, "report", "nope", "--store", url)  # a read command never creates a store
    assert absent.code == 1 and "no store at" in absent.err and not (tmp_path / "k.db").exists()
    assert koala(capsys, "store", "init", "--store", url).code == 0
    missing = koala(capsys, "report", "nope", "--store", url)
    assert missing.code == 1 and "no replay run 'nope'" in missing.err and len(missing.err.strip().splitlines()) == 1
    summary, comparisons = synthetic_run(10)
    store = SqliteStore(tmp_path / "k.db")
    store.runs.put_run(summary)
    store.runs.put_comparisons(comparisons)
    store.close()
    nowhere = koala(capsys, "report", summary.run_id, "-o", str(tmp_path / "no" / "such" / "r.html"), "--store", url)
    assert nowhere.code == 1 and "cannot write" in nowhere.err and "Traceback" not in nowhere.err
    assert not list(tmp_path.glob("*.tmp"))
    ok = koala(capsys, "report", summary.run_id, "-o", str(tmp_path / "r.html"), "--store", url)
    assert ok.code == 0 and (tmp_path / "r.html").stat().st_size > 1_000_000
