"""The store URL's password is never printed, however the URL is written or misspelled.

`redact_url` used to mask only a password in the URL's user part: libpq also takes one as a
`password=` query parameter, printed whole in every message. A URL libpq could not parse (a bad
percent escape, an unclosed IPv6 bracket) reached the CLI's last net as "unexpected
ProgrammingError" quoting libpq's text, which quotes the password (or the whole URL); a scheme
misspelled in `--store` was quoted as given, and one misspelled in `store.toml` was taken for a
SQLite path whose "no store at" message named it. Each is a command an operator runs with the
URL in hand, often with its output in a ticket or a CI log.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures

SECRET = "hunter2"
# Port 1 on loopback: refused at once, so each command fails fast at the connection.
URLS = [
    f"postgresql://u@127.0.0.1:1/x?password={SECRET}",
    f"postgresql://u@127.0.0.1:1/x?sslmode=disable&pass%77ord={SECRET}",
    f"postgresql://u:{SECRET}%zz@127.0.0.1:1/x",  # libpq: invalid percent-encoded token
    f"postgresql://u:{SECRET}@[::1/x",  # libpq and urlsplit: an unclosed IPv6 bracket
    f"postgresql://u:{SECRET}@127.0.0.1:1/x?bogus=1",  # libpq: invalid URI query parameter
    f"postgresq://u:{SECRET}@127.0.0.1:1/x",  # a misspelled scheme
    # Unescaped `/`, `?` or `#` in the password (a base64 one): `/` makes libpq read the user
    # as the host, and urlsplit ends the user part early in all three.
    f"postgresql://u:{SECRET}/b+c@127.0.0.1:1/x",
    f"postgresql://u:{SECRET}?b@127.0.0.1:1/x",
    f"postgresql://u:{SECRET}#b@127.0.0.1:1/x",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("command", [("store", "status"), ("store", "migrate", "--json")])
def test_a_store_url_password_is_never_printed(cli: Run, url: str,
                                               command: tuple[str, ...]) -> None:
    r = cli("--store", url, *command)
    assert SECRET not in r.output, r.output
    # The operator's input error, said in one line: not a host error to report.
    assert r.exit_code == 2 and "unexpected" not in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("url", URLS[:5])
def test_bench_store_never_prints_the_password(cli: Run, url: str) -> None:
    from host.cli.main import normalize_argv  # as the console script reads `bench --store`

    r = cli(*normalize_argv(["bench", "--store", url, "--quick"]))
    # A password on the command line is refused before anything reads the URL (below).
    assert r.exit_code == 2 and "--store holds a password" in r.stderr, r.output
    assert ".pgpass" in r.stderr and "STOCKADE_STORE" not in r.stderr  # the bench reads neither
    assert SECRET not in r.output, r.output


@pytest.mark.parametrize("url", [f"postgresql://u:{SECRET}@127.0.0.1:1/x",
                                 f"postgresql://u@127.0.0.1:1/x?password={SECRET}"])
@pytest.mark.parametrize("command", [("serve", "--port", "0"), ("store", "status"), ("doctor",)])
def test_a_password_typed_in_store_is_refused_before_anything_runs(
        cli: Run, home: Path, url: str, command: tuple[str, ...]) -> None:
    """A command line is every local user's to read (`/proc/PID/cmdline`, for as long as a
    `serve` runs) and stays in the shell's history: the password belongs in STOCKADE_STORE,
    `store.toml` (0600) or `~/.pgpass`."""
    r = cli("--store", url, *command)
    assert r.exit_code == 2 and "--store holds a password" in r.stderr, r.output
    assert "STOCKADE_STORE" in r.stderr and SECRET not in r.output
    assert not home.exists()  # refused before the home was made


def test_the_same_url_in_the_variable_is_read(cli: Run, home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKADE_STORE", f"postgresql://u:{SECRET}@127.0.0.1:1/x")
    r = cli("store", "status")
    assert "--store holds a password" not in r.stderr and SECRET not in r.output


@pytest.mark.parametrize("command", [("store", "migrate"), ("doctor",)])
def test_a_misspelled_url_in_store_toml_is_refused_without_its_password(
        cli: Run, home: Path, command: tuple[str, ...]) -> None:
    home.mkdir(parents=True)
    (home / "store.toml").write_text(f'url = "postgressql://u:{SECRET}@127.0.0.1:1/x"\n')
    (home / "store.toml").chmod(0o600)
    r = cli(*command)
    assert SECRET not in r.output, r.output
    assert r.exit_code == 2 and "not a PostgreSQL URL" in r.output
    assert not any(p.name.startswith("postgres") for p in home.rglob("*"))


def test_redaction_keeps_what_names_the_store() -> None:
    from host.home import redact_url, scrub_url_secrets

    assert redact_url(f"postgresql://u:{SECRET}@db:5432/x?sslmode=require") == \
        "postgresql://u:***@db:5432/x?sslmode=require"
    assert redact_url(f"postgresql://u@db/x?password={SECRET}&sslmode=require") == \
        "postgresql://u@db/x?password=***&sslmode=require"
    assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"
    assert redact_url(f"postgresql://u:{SECRET}/b@[::1]:5432/x") == \
        "postgresql://u:***@[::1]:5432/x"
    assert redact_url("postgresql://u:pw@db/x?application_name=a@b") == \
        "postgresql://u:***@db/x?application_name=a@b"
    url = f"postgresql://u:{SECRET}%41@db/x"
    assert scrub_url_secrets(f'bad token "{SECRET}%41" or {SECRET}A', url) == \
        'bad token "***" or ***'
