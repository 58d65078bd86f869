"""`keys host-retire` leaves no consent signed by the key it retires (review finding: it counted
the consents depending on the key outside any lock, then retired it; a consent signed by that
key in between, by a keyring read before a rotation (a serving host's, until its watcher
refreshes, or a command's), was written and could no longer verify: its app was disabled).

The interleaving is made deterministic: the retirement's keyring write (`Keyring._save_meta`,
after the count) first lets a thread sign and write such a consent, and waits for it."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from apphelp import install, write_app
from clihelp import Run, cli_fixture, home_fixture  # noqa: F401 - fixtures

from host.apps import operations
from host.apps.consent import verify_install
from host.apps.installs import InstallChanged, InstallStore
from host.apps.switches import switch
from host.clock import SystemClock
from host.home import Home
from host.keys.keyring import Keyring

SRC = '''
from stockade import App

class TestApp(App):
    pass
'''
# How long the retirement waits for the signing thread: it returns at once where nothing holds
# it back (before the fix), and is held on the store's write lock where the retirement holds it.
SIGNER_WAIT_S = 0.5


def test_no_consent_is_signed_by_a_key_between_its_check_and_its_retirement(
        home: Path, cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Home(home).ensure()
    rec = install(h, write_app(tmp_path / "apps", "racer", ["livechat.read"], [], SRC))
    stale = Keyring.open(h.keys_dir)  # read before the rotation: K1 still current in it
    old = stale.current
    assert cli("keys", "host-rotate").exit_code == 0
    with InstallStore(h.host_store) as store:  # re-confirmed with the new key: nothing needs K1
        switch(store, Keyring.open(h.keys_dir), rec, True, clock=SystemClock())

    fired: list[threading.Thread] = []
    outcome: list[BaseException | None] = []

    def sign_with_the_stale_keyring() -> None:
        try:
            install(h, write_app(tmp_path / "apps", "latecomer", ["livechat.read"], [], SRC))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    save = Keyring._save_meta

    def save_after_a_signer(self: Keyring) -> None:
        if old in self.retired and not fired:
            fired.append(threading.Thread(target=sign_with_the_stale_keyring))
            fired[0].start()
            fired[0].join(SIGNER_WAIT_S)  # held back (after the fix) until the retirement ends
        save(self)

    # An install whose keyring was read before the rotation (the window between its read and
    # its write; a serving host's until its watcher refreshes): it signs with K1.
    monkeypatch.setattr(operations, "open_keyring", lambda _home, _clock=None: stale)
    monkeypatch.setattr(Keyring, "_save_meta", save_after_a_signer)
    r = cli("keys", "host-retire", old)
    for t in fired:
        t.join(10)
    monkeypatch.undo()
    assert len(outcome) == 1, "the retirement's keyring write was not reached"
    # Either the retirement was refused (the consent came first) or the consent was (it came
    # after): in no order is the install left with a consent that does not verify.
    with InstallStore(h.host_store) as store:
        for each in store.list():
            check = verify_install(each, store, Keyring.open(h.keys_dir), disable=False)
            assert check.ok, (f"retire exit {r.exit_code}: {r.output}; {each.app_id}: "
                              f"{check.problem}")
        assert [each.app_id for each in store.list()] == ["racer"]  # the late one not written
    assert r.exit_code == 0, r.output  # retired; the consent signed by it was refused
    assert old in Keyring.open(h.keys_dir).retired
    assert isinstance(outcome[0], InstallChanged), outcome  # the CLI and console say it
    assert "retired" in str(outcome[0])
