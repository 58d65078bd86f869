"""The app author is caught early: a misspelt handler is refused by `app package`."""
from __future__ import annotations

from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)


def _new(cli: Run, tmp_path: Path) -> Path:
    folder = tmp_path / "greeter"
    assert cli("app", "new", "greeter", "--dir", str(folder)).exit_code == 0
    return folder


def test_misspelt_handler_is_refused_with_did_you_mean(cli: Run, tmp_path: Path,
                                                       monkeypatch) -> None:
    folder = _new(cli, tmp_path)
    main = folder / "main.py"
    main.write_text(main.read_text().replace("on_livechat_room_started", "on_livechat_room_start"))
    monkeypatch.chdir(tmp_path)
    r = cli("app", "package", str(folder))
    assert r.exit_code == 2, r.output
    assert "on_livechat_room_start is no event handler" in r.stderr
    assert "did you mean 'on_livechat_room_started'?" in r.stderr
    assert not list(tmp_path.glob("*.zip"))


def test_handler_for_an_undeclared_event_warns(cli: Run, tmp_path: Path, monkeypatch) -> None:
    folder = _new(cli, tmp_path)
    main = folder / "main.py"
    main.write_text(main.read_text() + "\n    def on_livechat_room_closed(self, ctx, event):\n"
                    "        return None\n")
    monkeypatch.chdir(tmp_path)
    r = cli("app", "package", str(folder))
    assert r.exit_code == 0, r.output
    assert "on_livechat_room_closed handles livechat.room_closed" in r.stderr
    assert list(tmp_path.glob("greeter-*.zip"))


def test_lifecycle_hooks_are_not_refused(cli: Run, tmp_path: Path, monkeypatch) -> None:
    folder = _new(cli, tmp_path)
    main = folder / "main.py"
    main.write_text(main.read_text() + "\n    def on_install(self, ctx, event):\n"
                    "        return None\n")
    monkeypatch.chdir(tmp_path)
    assert cli("app", "package", str(folder)).exit_code == 0


def test_event_doc_is_generated_from_the_vocabulary() -> None:
    """docs/EVENTS.md is the generator's output, and the vocabulary's payload keys are the
    server's payload types' keys (so the doc cannot drift from what handlers receive)."""
    import typing

    from host.apps.eventdoc import PAYLOAD_TYPES, render
    from policies.vocabulary import EVENTS

    doc = Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md"
    assert doc.read_text() == render(), "regenerate: python -m host.apps.eventdoc"
    assert set(PAYLOAD_TYPES) == set(EVENTS)
    for name, spec in EVENTS.items():
        assert [k for k, _ in spec.payload] == list(typing.get_type_hints(PAYLOAD_TYPES[name]))


def test_event_doc_says_what_each_example_app_handles() -> None:
    """The doc's "What the example apps use" names exactly the events each example's manifest
    lists, and every hook or event named there has a handler in the app's main.py."""
    import tomllib

    from host.apps.eventdoc import EXAMPLE_USES, LIFECYCLE
    from policies.vocabulary import EVENTS

    apps = Path(__file__).resolve().parents[2] / "examples" / "apps"
    hooks = {h for h, *_ in LIFECYCLE}
    for folder in sorted(p for p in apps.iterdir() if (p / "app.toml").exists()):
        manifest = tomllib.loads((folder / "app.toml").read_text())
        named = [n.strip() for app, ev, *_ in EXAMPLE_USES if app == manifest["id"]
                 for n in ev.split(",")]
        assert {n for n in named if n in EVENTS} == set(manifest["events"]), folder.name
        assert all(n in EVENTS or n in hooks for n in named), named
        source = (folder / "main.py").read_text()
        for n in named:
            assert f"def on_{n.replace('.', '_')}(" in source, (folder.name, n)
