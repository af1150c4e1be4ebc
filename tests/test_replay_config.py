"""One declarative model for the replay options: the command line, koala.toml, and the
configuration each run keeps so `koala replay --rerun RUN` repeats it exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import koala
from koala_store.replay.config import ReplayConfig, option_specs
from koala_store.store.sqlite import SqliteStore
from replay_helpers import DEP_PEER, free_port, item_session, sut


@pytest.fixture
def db(tmp_path: Path) -> str:
    store = SqliteStore(tmp_path / "k.db")
    store.put_many([item_session(i, f"sku{i}", 10) for i in range(4)])
    store.close()
    return f"sqlite:///{tmp_path / 'k.db'}"


def test_every_option_has_one_declaration_with_a_help_panel() -> None:
    specs = option_specs()
    names = {name for name, *_ in specs}
    assert names == set(ReplayConfig.__struct_fields__) - {"query"}
    flags = [flag for *_, spec in specs for flag in spec.flags]
    assert len(flags) == len(set(flags))
    assert {spec.panel.value for *_, spec in specs} == {"Target", "Mock (outbound calls)", "Diff", "Noise", "Pace", "Output"}


def test_koala_toml_supplies_options_and_flags_override_it(capsys, db: str, tmp_path: Path, monkeypatch) -> None:
    dep = free_port()
    with sut("--price-bump", "1", dep=dep) as port:
        (tmp_path / "koala.toml").write_text(
            f'[replay]\ntarget = "127.0.0.1:{port}"\noutbound = ["127.0.0.1:{dep}={DEP_PEER.address}"]\nignore = ["price"]\nrun-name = "from-toml"\n'
        )
        monkeypatch.chdir(tmp_path)
        run = koala(capsys, "replay", "*", "--store", db)
        assert run.code == 0, run.err  # the bumped price is ignored by the file's --ignore
        run = koala(capsys, "replay", "*", "--ignore", "nothing", "--store", db, "--json")
        assert run.code == 3  # the flag replaces the file's list: the price differs now


def test_a_stored_run_is_repeated_exactly_with_rerun(capsys, db: str) -> None:
    dep = free_port()
    with sut("--price-bump", "1", dep=dep) as port:
        args = ["--target", f"127.0.0.1:{port}", "--outbound", f"127.0.0.1:{dep}={DEP_PEER.address}", "--limit", "3", "--run-name", "first"]
        first = koala(capsys, "replay", "inbound.path:/item/*", *args, "--store", db)
        assert first.code == 3
        again = koala(capsys, "replay", "--rerun", "first", "--run-name", "second", "--store", db)
        assert again.code == 3, again.err
    store = SqliteStore(db.removeprefix("sqlite:///"))
    one, two = store.runs.run("first"), store.runs.run("second")
    assert one is not None and two is not None
    assert {k: v for k, v in one.config.items() if k != "run_name"} == {k: v for k, v in two.config.items() if k != "run_name"}
    assert (one.total, one.different, one.query) == (two.total, two.different, two.query) == (3, 3, "inbound.path:/item/*")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[replay]\ntarget = "127.0.0.1:1"\nconcurency = 4\n', "koala.toml [replay]: unknown replay option 'concurency'; did you mean concurrency?"),
        ("[replay]\nconcurrency = \"four\"\n", "koala.toml [replay]: replay option concurrency: Expected `int`, got `str`"),
        ("[replay\n", "koala.toml is not valid TOML"),
    ],
)
def test_a_bad_koala_toml_is_one_clear_error(capsys, db: str, tmp_path: Path, monkeypatch, toml: str, message: str) -> None:
    (tmp_path / "koala.toml").write_text(toml)
    monkeypatch.chdir(tmp_path)
    run = koala(capsys, "replay", "*", "--target", "127.0.0.1:1", "--store", db)
    assert run.code == 1 and message in " ".join(run.err.split()), run.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["*"], "no target: give --target HOST:PORT"),
        (["--target", "127.0.0.1:1"], "no query: give the sessions to replay"),
        (["--rerun", "nope"], "--rerun nope: no replay run 'nope'"),
        (["*", "--target", "127.0.0.1:1", "--config", "missing.toml"], "--config missing.toml: no such file"),
    ],
)
def test_missing_or_wrong_options_are_one_clear_error(capsys, db: str, args: list[str], message: str) -> None:
    run = koala(capsys, "replay", *args, "--store", db)
    assert run.code == 1 and message in " ".join(run.err.split()), run.err
