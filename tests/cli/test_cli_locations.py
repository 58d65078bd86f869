"""Reviewer tools point at the exact place: `policy check` findings carry file:line:column
(text and --json), and a bad decision-cases file gives one located line per problem instead
of a validation dump."""
from __future__ import annotations

import json
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)

GOOD = '''schema = 1
name = "p"
[[rule]]
id = "create"
effect = "permit"
apps = ["a"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
[[quota]]
id = "q"
apps = ["a"]
action = "users.create"
limit = 5
window = "1h"
'''


def test_check_locates_the_entry_by_line_and_column(cli: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('user_types = ["bot"]',
                                'user_types = ["bot"]\n  roles = [\n    "bot",\n    "admin",\n  ]'))
    r = cli("policy", "check", str(bad))
    # "admin" sits on line 12, its quote at column 5 (under the indented array).
    assert r.exit_code == 1 and f"{bad}:12:5: security-warning STK020" in r.stderr, r.stderr
    doc = json.loads(cli("policy", "check", str(bad), "--json").stdout)
    [f] = [f for f in doc["findings"] if f["code"] == "STK020"]
    assert (f["line"], f["column"]) == (12, 5)


def test_check_locates_schema_and_syntax_errors(cli: Run, tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text(GOOD.replace("limit = 5", "  limt = 5"))
    r = cli("policy", "check", str(typo), "--json")
    assert r.exit_code == 1
    codes = {(f["code"], f["line"], f["column"]) for f in json.loads(r.stdout)["findings"]}
    assert ("STK004", 14, 3) in codes, codes
    broken = tmp_path / "broken.toml"
    broken.write_text('schema = 1\nname = "p"\nx = [1,\n')
    r = cli("policy", "check", str(broken))
    assert r.exit_code == 1 and f"{broken}:4:1: error STK002" in r.stderr, r.stderr


def _cases_dir(tmp_path: Path, cases: str) -> Path:
    d = tmp_path / "pol"
    d.mkdir()
    (d / "p.toml").write_text(GOOD)
    (d / "p.cases.toml").write_text(cases)
    return d


CASE = '''schema = 1
[[case]]
name = "bot"
app = "a"
action = "users.create"
args = { username = "u1", name = "U", type = "bot" }
expect = "allow"
'''


def test_cases_file_runs(cli: Run, tmp_path: Path) -> None:
    r = cli("policy", "test", str(_cases_dir(tmp_path, CASE)))
    assert r.exit_code == 0 and "1 passed, 0 failed" in r.stderr, r.output


def test_bad_cases_file_gives_located_one_line_errors(cli: Run, tmp_path: Path) -> None:
    d = _cases_dir(tmp_path, CASE.replace('expect = "allow"', 'expect = "alow"\nwhy = 1'))
    r = cli("policy", "test", str(d))
    cf = d / "p.cases.toml"
    assert r.exit_code == 2, r.output  # no case could run: an input error
    lines = r.stderr.splitlines()
    assert any(ln.startswith(f"{cf}:7:1: error STK006 cases file: case.0.expect") for ln in lines)
    assert any(ln.startswith(f"{cf}:8:1: error STK004") and "'case.0.why'" in ln for ln in lines)
    # No pydantic dump: no "validation error for", no "For further information" URL.
    assert "validation error" not in r.stderr and "errors.pydantic.dev" not in r.stderr
    assert "Traceback" not in r.output


def test_cases_file_unknown_action_and_syntax(cli: Run, tmp_path: Path) -> None:
    d = _cases_dir(tmp_path, CASE.replace('action = "users.create"', 'action = "users.craete"'))
    r = cli("policy", "test", str(d))
    assert f"{d / 'p.cases.toml'}:5:1: error STK010" in r.stderr
    assert "did you mean 'users.create'?" in r.stderr
    (d / "p.cases.toml").write_text('schema = 1\n[[case]\n')
    r = cli("policy", "test", str(d))
    assert r.exit_code == 2 and f"{d / 'p.cases.toml'}:2:" in r.stderr and "STK002" in r.stderr


OLD = GOOD.replace('user_types = ["bot"]', 'user_types = ["bot"]\nroles = ["bot"]') + '''
[[rule]]
id = "web"
effect = "permit"
apps = ["a"]
actions = ["http.request"]
[rule.when]
domains = ["api.example.com:*", "old.example.com"]
[[rule]]
id = "rest"
effect = "permit"
apps = ["a"]
actions = ["rest.call"]
[rule.when]
rest_routes = ["GET /api/v1/rooms.info"]
'''


def _diff_files(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(OLD)
    new.write_text(OLD.replace('roles = ["bot"]', 'roles = ["bot", "livechat-agent", "admin"]')
                   .replace('"api.example.com:*", "old.example.com"',
                            '"api.example.com:8443", "new.example.com:8443"')
                   .replace("rooms.info", "users.info").replace("limit = 5", "limit = 3"))
    return old, new


def test_diff_shows_both_directions_with_locations(cli: Run, tmp_path: Path) -> None:
    old, new = _diff_files(tmp_path)
    r = cli("policy", "diff", str(old), str(new), "--json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["widens"] and doc["narrows"] and doc["loads"] is False
    got = {(c["direction"], c["kind"], c["detail"], c["where"]) for c in doc["changes"]}
    # Widenings point into NEW, at the entry itself; narrowings at what OLD had.
    assert ("widens", "constraint-widened", "roles adds ['livechat-agent']",
            f"{new}:10:17") in got, got
    assert ("widens", "constraint-widened", "domains adds ['new.example.com:8443']",
            f"{new}:24:36") in got
    assert ("narrows", "constraint-narrowed",
            "domains drops ['api.example.com:*', 'old.example.com']", f"{old}:24:12") in got
    assert ("widens", "constraint-widened", "rest_routes adds ['GET /api/v1/users.info']",
            f"{new}:31:16") in got
    assert ("narrows", "constraint-narrowed", "rest_routes drops ['GET /api/v1/rooms.info']",
            f"{old}:31:16") in got
    assert ("narrows", "quota-tightened", "quota q limit lowered 5 -> 3", f"{new}:15:1") in got
    # api.example.com:8443 is inside the old api.example.com:* : no widening claimed for it.
    assert not any("api.example.com:8443" in c["detail"] for c in doc["changes"])
    [admin] = [c for c in doc["changes"] if c["kind"] == "admin-role-added"]
    assert admin["direction"] == "refused" and admin["where"] == f"{new}:10:35"
    assert [f["code"] for f in doc["refused_by"]] == ["STK020"]
    text = cli("policy", "diff", str(old), str(new))
    assert text.exit_code == 1
    assert f"! refused {new}:10:35: admin-role-added" in text.stderr
    assert f"- narrows {new}:15:1: quota-tightened" in text.stderr
    assert "NEW would be refused by the host" in text.stderr


def test_diff_that_only_narrows_exits_zero(cli: Run, tmp_path: Path) -> None:
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(OLD)
    new.write_text(OLD.split("[[rule]]\nid = \"web\"")[0])
    r = cli("policy", "diff", str(old), str(new))
    assert r.exit_code == 0, r.output
    assert f"- narrows {old}:22:1: permit-removed: a http.request" in r.stderr
    assert f"- narrows {old}:" in r.stderr and "permit-removed: a rest.call" in r.stderr
    assert "NEW grants nothing OLD did not" in r.stderr
    back = cli("policy", "diff", str(new), str(old), "--json")
    assert back.exit_code == 1
    assert {c["kind"] for c in json.loads(back.stdout)["changes"]} == {"permit-added"}
