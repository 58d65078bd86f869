"""A serving host never decides with a policy file caught half-written.

An editor or `cp` writes a file in place, in pieces. The host polls its policy folder and loaded
whatever it found: the first piece of a file, cut just before its forbid, is a valid policy of its
own, and the host decided with it (audited as an ordinary `policy_load`) until the next poll, so
for that window the app reached what the whole file forbids. A change is now used only once the
folder has held still for a whole poll (`host/gate/policywatch.py`)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from host.gate.gate import PolicySource
from host.gate.policywatch import PolicyWatch
from policies import Request, decide
from policies.loader import load_policy
from policies.policy import Policy

BASE = 'schema = 1\nname = "base"\n'
CRM = '''schema = 1
name = "crm"

[[rule]]
id = "crm-http"
effect = "permit"
apps = ["crm"]
actions = ["http.request"]

[rule.when]
domains = ["api.example.com", "admin.example.com"]

[[rule]]
id = "crm-no-admin"
effect = "forbid"
apps = ["crm"]
actions = ["http.request"]

[rule.when]
domains = ["admin.example.com"]
'''
ADMIN = Request("crm", "i1", "http.request",
                {"method": "GET", "url": "https://admin.example.com/users"},
                {"resolved_ips": ["93.184.216.34"]}, 0.0)
API = Request("crm", "i1", "http.request", {"method": "GET", "url": "https://api.example.com/"},
              {"resolved_ips": ["93.184.216.34"]}, 0.0)
GRANTS = frozenset({"http"})


def _watch(folder: Path) -> tuple[PolicySource, PolicyWatch, list[tuple[str, str]]]:
    (folder / "base.toml").write_text(BASE)
    source = PolicySource(load_policy(folder))
    records: list[tuple[str, str]] = []
    return source, PolicyWatch(source, folder, lambda k, d: records.append((k, d))), records


def test_a_file_caught_half_written_never_decides(tmp_path: Path) -> None:
    source, watch, records = _watch(tmp_path)
    start = source.current().revision
    cut = CRM.index('[[rule]]\nid = "crm-no-admin"')
    target = tmp_path / "crm.toml"
    target.write_text(CRM[:cut])  # the writer's first piece: a valid policy without the forbid
    watch.poll()
    assert source.current().revision == start, "the first piece was used"
    assert not decide(source.current(), GRANTS, ADMIN).allowed
    with target.open("a") as fh:  # the rest, by the next poll
        fh.write(CRM[cut:])
    watch.poll()
    assert source.current().revision == start, "a file still changing was used"
    assert not decide(source.current(), GRANTS, ADMIN).allowed
    watch.poll()  # the folder held still for a whole poll: the whole file is used
    assert decide(source.current(), GRANTS, API).allowed
    assert not decide(source.current(), GRANTS, ADMIN).allowed
    assert [k for k, _ in records] == ["policy_load"]  # only the whole file was ever loaded


def test_a_change_that_holds_still_is_used_at_the_next_poll(tmp_path: Path) -> None:
    source, watch, records = _watch(tmp_path)
    start = source.current().revision
    (tmp_path / "crm.toml").write_text(CRM)
    first = watch.poll()
    assert first.changed and first.refused is None and first.revision == start
    second = watch.poll()
    assert second.changed and second.refused is None
    assert source.current().revision == second.revision != start
    assert watch.poll().changed is False
    # a bad change is refused the same way, after it held still, and the good revision stays
    (tmp_path / "crm.toml").write_text(CRM + "[[rule]]\nid = 3\n")
    assert watch.poll().refused is None
    assert watch.poll().refused
    assert source.current().revision == second.revision
    assert [k for k, _ in records] == ["policy_load", "policy_refused"]


def test_a_writer_that_starts_while_the_set_is_read_is_waited_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, watch, records = _watch(tmp_path)
    start = source.current().revision
    target = tmp_path / "crm.toml"
    target.write_text(CRM.replace("admin.example.com\"]\n", "admin.example.com\", \"x.test\"]\n"))
    assert watch.poll().settling
    cut = CRM.index('[[rule]]\nid = "crm-no-admin"')
    real = load_policy

    def read_as_a_save_begins(*paths: str | os.PathLike[str]) -> Policy:
        target.write_text(CRM[:cut])  # the save's first piece lands as the folder is read
        return real(*paths)

    monkeypatch.setattr("host.gate.policywatch.load_policy", read_as_a_save_begins)
    assert watch.poll().settling
    monkeypatch.setattr("host.gate.policywatch.load_policy", real)
    assert source.current().revision == start, "a set read as a save began was used"
    assert not decide(source.current(), GRANTS, ADMIN).allowed
    with target.open("a") as fh:
        fh.write(CRM[cut:])
    assert watch.poll().settling
    watch.poll()
    assert decide(source.current(), GRANTS, API).allowed
    assert not decide(source.current(), GRANTS, ADMIN).allowed
    assert [k for k, _ in records] == ["policy_load"]
