"""Policy evaluation is bounded and the linter binds (issue "No side doors").

Attacks, each of which held on the code before this file:
- a username pattern that backtracks froze every decision (the gate, the watchdog, REST) for
  seconds on one long username: patterns now run on RE2, in time linear in the input;
- a policy `stockade policy check` called refused (apps = ["*"], actions = ["*"]) loaded
  anyway and granted every action to every app: error and security-warning findings now stop
  the load, at start and on a serving host's reload (which keeps its revision and audits why);
- an HTTP domain rule for one host reached every service on it: a portless entry now reaches
  the web ports only, any other port is named.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from apphelp import install, write_app, write_policy

from host.clock import SystemClock
from host.demo.crm import DemoCrm
from host.home import Home
from host.ledger.audit import open_readonly
from host.runtime import Host, HostConfig
from policies.loader import PolicyLoadError, load_policy_text

ROOT = Path(__file__).resolve().parents[2]

# Patterns that backtrack exponentially in Python's `re` on "aaaa…!" (each was a real finding).
BACKTRACKING = ["^(a+)+$", "(a|a)*b", "^(a|aa)+$", "(.*a){12}"]

_DECIDE = textwrap.dedent('''
    import json, sys
    from policies import Request, decide
    from policies.loader import load_policy_text
    pattern, username = sys.argv[1], sys.argv[2]
    p = load_policy_text(f"""schema = 1
    name = "t"
    [[rule]]
    id = "c"
    effect = "permit"
    apps = ["a"]
    actions = ["users.create"]
    [rule.when]
    user_types = ["bot"]
    username_pattern = {json.dumps(pattern)}
    [[quota]]
    id = "q"
    apps = ["a"]
    action = "users.create"
    limit = 1
    window = "1h"
    """)
    d = decide(p, frozenset({"users.create"}), Request("a", "i", "users.create",
               {"username": username, "name": "n", "type": "bot"}, {}, 0.0))
    print(json.dumps([d.allowed, d.message]))
''')


@pytest.mark.parametrize("pattern", BACKTRACKING)
def test_a_backtracking_pattern_cannot_freeze_decisions(pattern: str) -> None:
    """In a subprocess, so the old engine's exponential match fails the test by its timeout
    (a minute, for what RE2 answers in microseconds) instead of freezing the suite."""
    username = "a" * 200 + "!"
    r = subprocess.run([sys.executable, "-c", _DECIDE, pattern, username], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    allowed, message = json.loads(r.stdout)
    assert allowed is False and "does not match" in message


@pytest.mark.parametrize(("pattern", "why"), [
    (r"^(a)\\1$", "invalid escape"),           # a backreference
    ("^(?=admin)", "invalid perl operator"),   # lookaround
    ("a" * 513, "longer than 512"),
    ("((a{100}){100}){100}", "repetition"),    # a program too large to keep
])
def test_patterns_re2_cannot_bound_are_refused_at_load(pattern: str, why: str) -> None:
    body = (f'schema = 1\nname = "t"\n[[rule]]\nid = "c"\neffect = "permit"\napps = ["a"]\n'
            f'actions = ["users.create"]\n[rule.when]\nuser_types = ["bot"]\n'
            f'username_pattern = "{pattern}"\n[[quota]]\nid = "q"\napps = ["a"]\n'
            f'action = "users.create"\nlimit = 1\nwindow = "1h"\n')
    with pytest.raises(PolicyLoadError, match="STK022") as exc:
        load_policy_text(body)
    assert why in str(exc.value)


EVERYTHING = 'schema = 1\nname = "wide"\n[[rule]]\nid = "all"\neffect = "permit"\n' \
             'apps = ["*"]\nactions = ["*"]\n'
NARROW = 'schema = 1\nname = "narrow"\n[[rule]]\nid = "read"\neffect = "permit"\n' \
         'apps = ["reader"]\nactions = ["livechat.read"]\n'


def test_what_policy_check_refuses_never_loads(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError) as exc:
        load_policy_text(EVERYTHING)
    assert "STK014" in str(exc.value) and "STK015" in str(exc.value)
    # The same file through the CLI's check and through a host start: refused both ways.
    f = tmp_path / "wide.toml"
    f.write_text(EVERYTHING)
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "stockade"), "policy", "check", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    home = Home(tmp_path / "home").ensure()
    write_policy(home, "wide", EVERYTHING)
    with pytest.raises(PolicyLoadError, match="STK015"):
        Host(home)


def _records(home: Home, kind: str) -> list[str]:
    log = open_readonly(home.host_db, SystemClock())
    try:
        return [str(e.body.get("detail")) for e in log.tail(1000) if e.body.get("kind") == kind]
    finally:
        log.close()


def test_a_serving_host_keeps_its_revision_and_audits_each_reload(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    home.default_policy.unlink(missing_ok=True)
    write_policy(home, "narrow", NARROW)
    host = Host(home)
    try:
        before = host.policy.current().revision
        write_policy(home, "wide", EVERYTHING)
        host.policy_watch.poll()  # a change is used once it has held still for a poll
        res = host.policy_watch.poll()
        assert res.changed and res.refused and "STK015" in res.refused
        assert host.policy.current().revision == before  # still deciding with the good one
        refused = _records(home, "operator.policy_refused")
        assert len(refused) == 1 and before in refused[0] and "STK015" in refused[0]

        (home.policies_dir / "wide.toml").unlink()
        write_policy(home, "more", NARROW.replace('"reader"', '"writer"').replace(
            '"narrow"', '"more"').replace('"read"', '"read2"'))
        host.policy_watch.poll()  # a change is used once it has held still for a poll
        res = host.policy_watch.poll()
        after = host.policy.current().revision
        assert res.refused is None and after != before
        loads = _records(home, "operator.policy_load")
        assert any(after in d and before in d for d in loads), loads
    finally:
        host.stop()


CALLER = '''
from stockade import App, PermissionDenied

class TestApp(App):
    def on_livechat_room_started(self, ctx, event):
        out = []
        for url in event["urls"]:
            try:
                out.append(ctx.http.request("GET", url)["status"])
            except PermissionDenied as e:
                out.append("denied: " + str(e))
        return out
'''


def _http_policy(domains: list[str]) -> str:
    return ('schema = 1\nname = "net"\n[[rule]]\nid = "net"\neffect = "permit"\n'
            'apps = ["caller"]\nactions = ["http.request", "livechat.read"]\n[rule.when]\n'
            f'domains = {json.dumps(domains)}\nallow_private = ["127.0.0.1"]\n')


@pytest.mark.parametrize("form", ["portless", "its port", "another port"])
def test_a_domain_rule_reaches_only_the_ports_it_names(tmp_path: Path, form: str) -> None:
    """Through a real child and the real outbound path: a service listening on a port the
    rule does not name is out of reach, though the host name matches."""
    crm = DemoCrm("k").start()
    try:
        entry = {"portless": "crm.localtest", "its port": f"crm.localtest:{crm.port}",
                 "another port": f"crm.localtest:{crm.port % 60000 + 1}"}[form]
        home = Home(tmp_path / "home").ensure()
        write_policy(home, "net", _http_policy([entry]))
        install(home, write_app(tmp_path / "apps", "caller", ["livechat.read", "http"],
                                ["livechat.room_started"], CALLER))
        config = HostConfig(resolver_overrides={"crm.localtest": "127.0.0.1"})
        with Host(home, config=config) as h:
            runner = next(iter(h.runners.values()))
            url = f"http://crm.localtest:{crm.port}/transcripts"
            (got,) = runner.submit("livechat.room_started", {"urls": [url]}, 15.0).result(30)
    finally:
        crm.stop()
    if form == "its port":
        assert got == 405  # reached (the CRM only takes POST)
    else:
        assert isinstance(got, str) and got.startswith("denied")
        assert f"crm.localtest:{crm.port} not listed" in got
