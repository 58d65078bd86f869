"""Rule 9 across the network, through the real product: `stockade serve --server rocketchat`
is SIGKILLed while an app's users.create is admitted and applied on the workspace but its
answer is held back; the next `serve` settles it at start from the workspace's state."""
from __future__ import annotations

import json
import signal
from pathlib import Path

from crashhelp import APP, crash_mid_create, rows, serve


def test_serve_killed_between_decision_and_answer_is_settled_at_next_start(
        tmp_path: Path) -> None:
    crashed = crash_mid_create(tmp_path, applied=True)  # write applied, answer lost
    s, home, port = crashed.standin, crashed.home, crashed.port
    s.clear_faults()
    (op_id,), = rows(home, "SELECT op_id FROM rc_ops WHERE action='users.create'")
    again = serve(home, port)  # settles at start, before serving
    try:
        bodies = [json.loads(b) for (b,) in rows(home, "SELECT body FROM audit ORDER BY seq")]
        outcomes = [b for b in bodies if b.get("op_id") == op_id and b.get("kind") == "outcome"]
        assert len(outcomes) == 1 and outcomes[0]["ok"] is True and outcomes[0]["reconciled"]
        uid = s.admin("GET", "users.info", params={"username": "made-by-crashapp"})["user"]["_id"]
        assert rows(home, f"SELECT created_by_app FROM rc_users WHERE user_id='{uid}'") == \
            [(APP,)]  # ownership (and so the seat) recorded from the workspace's answer
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(20)
        s.stop()
