"""Files the CLI writes at the operator's paths are never written through a link someone
planted there (review finding: `app package -o` and `app sign` wrote through a temporary name
`.NAME.tmp-PID`, opened with `open(..., "wb")`, so whoever can write the folder a package sits
in, its hostile author, made the operator's process write the zip into any file it names;
`keys generate` followed a dangling link at OUT.pub). An unwritable target is the operator's
error in one line, never "unexpected ... please report it"."""
from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

VICTIM_TEXT = "the operator's own file\n"


@pytest.fixture(name="incoming")
def incoming_fixture(tmp_path: Path, cli: Run) -> Path:
    """A folder an app's author can write (`incoming/`), their app in it, and the operator's
    file they aim at (`victim.txt`)."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    assert cli("app", "new", "lure", "--dir", str(incoming / "lure"),
               with_home=False).exit_code == 0
    (tmp_path / "victim.txt").write_text(VICTIM_TEXT)
    return incoming


def _plant(folder: Path, target: Path, names: list[str]) -> None:
    for name in names:
        os.symlink(target, folder / name)


@pytest.fixture(name="draws")
def draws_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The random part of the temporary names `write_atomic` draws, made known in advance
    (as if guessed), so a link can be planted at the first one."""
    real = secrets.token_hex
    seq = iter(["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"])
    monkeypatch.setattr(secrets, "token_hex", lambda n=None: next(seq, None) or real(n))
    yield ["aaaaaaaaaaaaaaaa"]


def _lures(name: str, draws: list[str]) -> list[str]:
    # The name the old code used and the first name the new code draws.
    return [f".{name}.tmp-{os.getpid()}", *(f".{name}.{d}.tmp" for d in draws)]


def test_package_out_never_writes_through_a_planted_link(cli: Run, incoming: Path,
                                                         draws: list[str]) -> None:
    victim = incoming.parent / "victim.txt"
    out = incoming / "lure.zip"
    _plant(incoming, victim, _lures(out.name, draws))
    r = cli("app", "package", str(incoming / "lure"), "-o", str(out), with_home=False)
    assert r.exit_code == 0, r.output
    assert victim.read_bytes() == VICTIM_TEXT.encode()  # before: the zip's bytes
    assert not out.is_symlink() and out.read_bytes()[:2] == b"PK"


def test_sign_in_place_never_writes_through_a_planted_link(cli: Run, incoming: Path,
                                                           tmp_path: Path,
                                                           draws: list[str]) -> None:
    key = tmp_path / "publisher.key"
    assert cli("keys", "generate", str(key), with_home=False).exit_code == 0
    pkg = incoming / "lure.zip"
    assert cli("app", "package", str(incoming / "lure"), "-o", str(pkg),
               with_home=False).exit_code == 0
    victim = tmp_path / "victim.txt"
    _plant(incoming, victim, _lures(pkg.name, ["bbbbbbbbbbbbbbbb"]))
    r = cli("app", "sign", str(pkg), "--key", str(key), with_home=False)
    assert r.exit_code == 0, r.output
    assert victim.read_bytes() == VICTIM_TEXT.encode()
    assert not pkg.is_symlink()


def test_keys_generate_never_follows_a_link_at_the_public_key(cli: Run, tmp_path: Path) -> None:
    aimed = tmp_path / "made-by-the-link"
    out = tmp_path / "pub-dir" / "publisher.key"
    out.parent.mkdir()
    os.symlink(aimed, out.parent / "publisher.key.pub")  # dangling: `exists()` says no
    r = cli("keys", "generate", str(out), with_home=False)
    assert r.exit_code == 2, r.output
    assert "already exists" in r.output
    assert not aimed.exists()  # before: created, holding the public key line
    assert not out.exists()  # and no private key left without its pair


def test_sign_to_an_unwritable_path_is_one_line_of_the_operators(cli: Run, incoming: Path,
                                                                 tmp_path: Path) -> None:
    key = tmp_path / "publisher.key"
    assert cli("keys", "generate", str(key), with_home=False).exit_code == 0
    pkg = incoming / "lure.zip"
    assert cli("app", "package", str(incoming / "lure"), "-o", str(pkg),
               with_home=False).exit_code == 0
    r = cli("app", "sign", str(pkg), "--key", str(key), "-o",
            str(tmp_path / "no-such-folder" / "x.zip"), with_home=False)
    assert r.exit_code == 2, r.output  # before: exit 1, "unexpected FileNotFoundError"
    assert "cannot write" in r.output and "unexpected" not in r.output


def test_an_authors_file_name_reaches_the_screen_inert(cli: Run, incoming: Path,
                                                      tmp_path: Path) -> None:
    """DESIGN rule 12: the name of a package its author handed in is their text (before, `app
    sign` and `app package` printed it raw: an escape sequence in it reached the terminal)."""
    key = tmp_path / "publisher.key"
    assert cli("keys", "generate", str(key), with_home=False).exit_code == 0
    pkg = incoming / "lure\x1b[2J\x1b]0;pwned\x07.zip"
    r = cli("app", "package", str(incoming / "lure"), "-o", str(pkg), with_home=False)
    assert r.exit_code == 0 and "\x1b" not in r.output and "\\x1b[2J" in r.output, r.output
    r = cli("app", "sign", str(pkg), "--key", str(key), with_home=False)
    assert r.exit_code == 0 and "\x1b" not in r.output and "\\x1b[2J" in r.output, r.output
