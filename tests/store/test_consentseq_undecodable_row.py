"""A consent check reads the operator records of an install from the audit chain
(`host/apps/consentseq.py`); a row whose body is no UTF-8 text (SQLite keeps any bytes a writer
of host.db puts in a TEXT column) is no witness, never the end of the check. Before, fetching
it raised `OperationalError` out of every consent check of the install: its app could not be
enabled or started, a disable not verified, whatever the chain's own verdict
(`tests/store/test_audit_undecodable_rows.py` holds the chain's readers)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from apphelp import install, write_app

from host.apps.consent import verify_install
from host.apps.consentseq import audited_state
from host.apps.installs import InstallStore
from host.home import Home
from host.keys.keyring import Keyring


def test_a_row_that_is_no_utf8_is_no_witness(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    rec = install(home, write_app(home.root / "src", "witness", ["users.read"], [],
                                  "from stockade import App\n\nclass TestApp(App):\n    pass\n"))
    store = InstallStore(home.host_store)
    before = audited_state(store.store, rec.install_id)
    assert before[0] >= 1  # the install's consent is in the chain
    # A forged operator record naming the install, with a byte that is no UTF-8 in its body.
    forged = ('{"actor":"x","consent_seq":99,"install_id":"' + rec.install_id
              + '","kind":"operator.outcome","ok":true,"note":"').encode() + b"\xff\"}"
    with sqlite3.connect(home.host_db) as db:
        seq = db.execute("SELECT max(seq) FROM audit").fetchone()[0] + 1
        db.execute("INSERT INTO audit(seq, ts, body, prev_hash, hash) VALUES "
                   "(?, 0, CAST(? AS TEXT), '', '')", (seq, forged))
    assert audited_state(store.store, rec.install_id) == before  # before: OperationalError
    assert verify_install(rec, store, Keyring.open(home.keys_dir), disable=False).ok
    store.close()
