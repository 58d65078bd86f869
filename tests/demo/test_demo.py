"""`stockade demo` is the README's main job: it must run end to end and exit 0 only when every
act behaved (real host, real confined children, real loopback CRM endpoint)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

STOCKADE = str(Path(sys.executable).parent / "stockade")


# A console narrower than the usual 80 columns: the demo's tables must wrap, not cut words.
WIDTH = 66


def test_demo_runs_and_every_check_holds(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": str(WIDTH)}
    r = subprocess.run([STOCKADE, "--home", str(tmp_path), "demo", "--json"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    doc = json.loads(r.stdout)  # stdout holds the JSON summary and nothing else
    failed = [c for c in doc["checks"] if not c["ok"]]
    assert doc["ok"] is True and not failed, failed
    names = " ".join(c["name"] for c in doc["checks"])
    for act in ("QuotaExceeded", "refused at consent", "domain the policy does not list",
                "sandbox refused", "audit verify",
                # issue 24's story: each step is a check of its own
                "app user is an available agent in Salesforce, done by the host",
                "put the bot account it created into Bot (found by name)",
                "EVERY relayed message shows the external agent's name",
                "answered as its own bot account, not as the app user",
                "audited with both identities",
                "asks what happens to the bot's agent (--agents remove|keep)",
                "not routed to a bot nobody answers"):
        assert act in names, act
    assert doc["users_created"] == 4  # three mirrored agents and the chatbot's bot account
    assert doc["live_agent_requests"] == 2
    assert doc["apps"]["chatbot-handover"]["state"] == "uninstalled"
    # crm-sync was restarted by the compromised setting: two transcripts before, the refused
    # post after; its counts carry across the restart (before: 1 event, 0 restarts)
    crm_sync = doc["apps"]["crm-sync"]
    assert crm_sync["events"] >= 3 and crm_sync["restarts"] == 1, crm_sync
    assert doc["crm_transcripts"] == 2
    assert doc["quota"]["used"] == doc["quota"]["limit"] == 3
    assert doc["bridge_calls"]["denied"] >= 2
    # the human narration went to stderr
    assert "Installing four apps" in r.stderr and "everything behaved" in r.stderr

    # Tables wrap between words: no cell loses characters to an ellipsis, the longest names
    # show whole, and no table line is wider than the console.
    table_lines = [ln for ln in r.stderr.splitlines() if ln[:1] in "┃│┏┡└"]
    assert table_lines and not [ln for ln in table_lines if "…" in ln]
    assert all(len(ln) <= WIDTH for ln in table_lines)
    cells = " ".join(table_lines)
    for word in ("livechat.agent-display", "chatbot-handover", "restarts", "proxy-agent"):
        assert word in cells, word
    # A long act title is not cut either (it goes on its own line on a narrow console).
    assert "Starting the host: each app in its own confined child" in r.stderr
    # Nor is any other cell (a cut one ends in "…" before its border), nor a demo line
    # shortened mid-sentence (the README's demo is read whole).
    assert not re.search(r"…\s*│", r.stderr), [ln for ln in r.stderr.splitlines() if "…" in ln]
    assert "or type 'human' to talk to a person." in r.stderr
    assert "Traceback" not in r.stderr


def test_wrapping_table_keeps_every_character_on_a_tiny_console() -> None:
    import io

    from rich.console import Console

    from host.inert import wrapping_table

    buf = io.StringIO()
    console = Console(file=buf, width=24, color_system=None)
    console.print(wrapping_table("t", ("app", "state"), [("chatbot-handover", "running")],
                                 console.width))
    text = buf.getvalue()
    assert "…" not in text
    # Folded across lines, every character is still there, in order.
    inside = "".join(ln.split("│")[1].strip() for ln in text.splitlines() if ln.startswith("│"))
    assert inside == "chatbot-handover"


def test_a_replaced_runners_counts_carry_over_with_its_restart() -> None:
    from types import SimpleNamespace

    from host.demo.scenario import carried_counts

    first = SimpleNamespace(events_done=2, events_failed=1, restarts=0)
    second = SimpleNamespace(events_done=4, events_failed=0, restarts=2)
    carried = carried_counts(first, None)
    assert carried == {"events": 2, "errors": 1, "restarts": 1}
    assert carried_counts(second, carried) == {"events": 6, "errors": 1, "restarts": 4}


def test_keep_says_at_the_end_where_the_home_was_kept(monkeypatch, tmp_path: Path) -> None:
    """`demo --keep`: the home stays, and the last line says where (before: only "home: ...
    (temporary)" at the start). The acts are stubbed: this is about the end."""
    import io
    import tempfile

    from rich.console import Console

    from host.demo.scenario import Demo

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for keep in (True, False):
        buf = io.StringIO()
        demo = Demo(Console(file=buf, width=400, color_system=None), keep=keep)
        for act in ("operator_setup", "install_apps", "start_host", "agents_at_enable",
                    "conversations", "refusals", "uninstall_story", "finish"):
            monkeypatch.setattr(demo, act, lambda *a: None)
        monkeypatch.setattr(demo.crm, "start", lambda: None)
        monkeypatch.setattr(demo.crm, "stop", lambda: None)
        demo.run()
        lines = buf.getvalue().splitlines()
        if keep:
            assert demo.home.root.is_dir() and "kept afterwards" in buf.getvalue()
            assert lines[-1].startswith(f"kept the demo's home: {demo.home.root}"), lines[-1]
            # `--json` carries it too (before: on stderr only, where a script does not look).
            assert demo.result.to_json()["kept_home"] == str(demo.home.root)
        else:
            assert not demo.root.exists() and "kept" not in buf.getvalue()
            assert "kept_home" not in demo.result.to_json()
