"""A serving host's log line about a refused policy change shows the policy author's text inert
(DESIGN rule 12): the file's name and the findings' words come from the folder, and `stockade
serve` in the foreground writes its log to the operator's terminal. A file named with an escape
sequence (`cp` puts any name there) cleared and retitled that terminal at each refusal."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from host.gate.gate import PolicySource
from host.gate.policywatch import PolicyWatch
from policies.loader import load_policy

ACTIVE = ("\x1b", "\x07", "\u202e", "\u009b")


def test_the_refusal_log_line_is_inert(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "base.toml").write_text('schema = 1\nname = "base"\n')
    source = PolicySource(load_policy(tmp_path))
    records: list[tuple[str, str]] = []
    watch = PolicyWatch(source, tmp_path, lambda kind, detail: records.append((kind, detail)))
    name = "evil\x1b]0;owned\x07\x1b[2J\u202e.toml"
    (tmp_path / name).write_text('schema = 1\nname = "e\u009b2J"\n[[rule]]\nid = "x"\n')
    with caplog.at_level(logging.ERROR, logger="stockade.policy"):
        watch.poll()
        assert watch.poll().refused
    lines = [r.getMessage() for r in caplog.records if r.name == "stockade.policy"]
    assert lines and "refused" in lines[0]
    for line in lines:
        for ch in ACTIVE:
            assert ch not in line, f"{ch!r} reached the log: {line!r}"
    assert "evil\\x1b]0;owned" in lines[0]
    assert [k for k, _ in records] == ["policy_refused"]  # the chain keeps the exact text
