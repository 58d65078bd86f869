"""`stockade policy ...` through the real root CLI: exit codes, --json on stdout only."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from polhelp import DEFAULT, DEMO, ROOT
from typer.testing import CliRunner

from host.cli import output
from host.cli.main import root

runner = CliRunner()


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """err_console holds the stderr it saw at import; point it at a buffer for this test."""
    buf = io.StringIO()
    monkeypatch.setattr(output.err_console, "_file", buf)  # restored to None: live stderr
    return buf


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    r = runner.invoke(root, ["--home", str(tmp_path / "home"), "policy", *args])
    return r.exit_code, r.stdout, r.stderr


def test_check_ok_and_json(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "check", str(DEFAULT), str(DEMO), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True and doc["revision"].startswith("sha256:")


def test_check_reports_every_finding_and_exits_1(tmp_path: Path, stderr: io.StringIO) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('schema = 1\nname = "b"\n[[rule]]\nid = "r"\neffect = "permit"\n'
                   'apps = ["*"]\nactions = ["*"]\n')
    code, out, err = run(tmp_path, "check", str(bad), "--json")
    assert code == 1
    found = {f["code"] for f in json.loads(out)["findings"]}
    assert {"STK014", "STK015", "STK013"} <= found
    code, out, _ = run(tmp_path, "check", str(bad))
    err = stderr.getvalue()
    assert code == 1 and out == "" and "STK015" in err and f"{bad}:7" in err


def test_check_missing_file_is_usage_error(tmp_path: Path, stderr: io.StringIO) -> None:
    code, _, _ = run(tmp_path, "check", str(tmp_path / "nope.toml"))
    err = stderr.getvalue()
    assert code == 2 and "does not exist" in err


def test_explain_allow_and_deny(tmp_path: Path) -> None:
    base = ["explain", "--policy", str(DEFAULT), "--policy", str(DEMO), "--app", "agent-sync",
            "--action", "users.create", "--arg", "username=ext-a", "--arg", "name=A",
            "--arg", "type=bot", "--json"]
    code, out, _ = run(tmp_path, *base)
    doc = json.loads(out)
    assert code == 0 and doc["code"] == "allow" and doc["seat_ceiling"] == 20
    assert {q["key"] for q in doc["quotas"]} >= {"install:explain:users.create#agent-sync-user-creation"}
    code, out, _ = run(tmp_path, *base, "--arg", 'roles=["admin"]', "--fact",
                       "role_privileged=false")
    assert code == 1 and json.loads(out)["code"] == "guardrail"
    code, out, _ = run(tmp_path, *base, "--grant", "users.read")
    assert code == 1 and json.loads(out)["code"] == "permission_denied"
    code, _, _err = run(tmp_path, *base, "--arg", "novalue")
    assert code == 2


def test_diff_exit_codes(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "diff", str(DEFAULT), str(DEFAULT), "--json")
    assert code == 0 and json.loads(out)["widens"] is False
    demo_dir = ROOT / "examples" / "policies"
    code, out, _ = run(tmp_path, "diff", str(DEFAULT), str(demo_dir), "--json")
    assert code == 1 and json.loads(out)["changes"]


def test_fmt_check_and_rewrite(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('name="t"\nschema=1\n')
    assert run(tmp_path, "fmt", "--check", str(f))[0] == 1
    assert run(tmp_path, "fmt", str(f))[0] == 0
    assert f.read_text() == 'schema = 1\nname = "t"\n'
    assert run(tmp_path, "fmt", "--check", str(f))[0] == 0
    f.write_text("schema = [[[")
    assert run(tmp_path, "fmt", str(f))[0] == 2
    assert f.read_text() == "schema = [[["


def test_test_command(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "test", str(ROOT / "examples" / "policies"), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["failed"] == 0 and doc["passed"] >= 10
    (tmp_path / "p.toml").write_text(DEMO.read_text())
    (tmp_path / "p.cases.toml").write_text(
        'schema = 1\n[[case]]\nname = "wrong on purpose"\napp = "crm-sync"\n'
        'action = "users.get"\nargs = { user_id = "u" }\nexpect = "allow"\n')
    code, out, _ = run(tmp_path, "test", str(tmp_path), "--json")
    assert code == 1 and json.loads(out)["failed"] == 1


def test_schema_is_json_schema(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "schema")
    doc = json.loads(out)
    assert code == 0 and "schema" in doc["properties"] and doc["additionalProperties"] is False


def test_test_command_refuses_when_the_set_is_refused_by_security_warnings(
    tmp_path: Path, stderr: io.StringIO,
) -> None:
    """A set the host refuses for security-warnings alone (STK013/STK014) runs no case: the
    refusing findings are reported and the run fails, never "0 passed, 0 failed", ok."""
    (tmp_path / "p.toml").write_text(
        'schema = 1\nname = "p"\n[[rule]]\nid = "everyone-creates"\neffect = "permit"\n'
        'apps = ["*"]\nactions = ["users.create"]\n[rule.when]\nuser_types = ["bot"]\n')
    (tmp_path / "p.cases.toml").write_text(
        'schema = 1\n[[case]]\nname = "c"\napp = "x"\naction = "users.create"\n'
        'args = { username = "u1", name = "U", type = "bot" }\nexpect = "guardrail"\n')
    assert run(tmp_path, "check", str(tmp_path))[0] == 1
    code, out, _ = run(tmp_path, "test", str(tmp_path), "--json")
    doc = json.loads(out)
    assert code != 0 and doc["ok"] is False and doc["passed"] == 0
    codes = {p["code"] for p in doc["problems"]}
    assert {"STK013", "STK014"} <= codes
    code, _, _ = run(tmp_path, "test", str(tmp_path))
    assert code != 0 and "STK013" in stderr.getvalue()


def test_test_command_with_no_case_fails(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(DEMO.read_text())
    (tmp_path / "p.cases.toml").write_text("schema = 1\n")
    code, out, _ = run(tmp_path, "test", str(tmp_path), "--json")
    doc = json.loads(out)
    assert code != 0 and doc["ok"] is False and doc["problems"][0]["code"] == "STK032"


def test_explain_reads_arg_values_as_text_like_can_i(tmp_path: Path) -> None:
    """`--arg username=12345` is the string an app sends (can-i's parse_args), not the number
    12345 the engine refuses as "must be a string"; `key:=JSON` still gives JSON."""
    pol = tmp_path / "p.toml"
    pol.write_text(
        'schema = 1\nname = "p"\n[[rule]]\nid = "a-create"\neffect = "permit"\napps = ["a"]\n'
        'actions = ["users.create"]\n[rule.when]\nuser_types = ["bot"]\n'
        'username_pattern = "[0-9]{3,10}"\n[[quota]]\nid = "q"\napps = ["a"]\n'
        'action = "users.create"\nlimit = 5\nwindow = "1h"\n'
        '[[rule]]\nid = "a-read"\neffect = "permit"\napps = ["a"]\nactions = ["users.read"]\n')
    base = ["explain", "--policy", str(pol), "--app", "a", "--json"]
    code, out, _ = run(tmp_path, *base, "--action", "users.create", "--arg", "username=12345",
                       "--arg", "name=Bot", "--arg", "type=bot")
    assert code == 0 and json.loads(out)["code"] == "allow", out
    code, out, _ = run(tmp_path, *base, "--action", "users.get", "--arg", "user_id=123")
    assert code == 0 and json.loads(out)["code"] == "allow", out
    code, out, _ = run(tmp_path, *base, "--action", "users.get", "--arg", "user_id:=123")
    assert code == 1 and "must be a non-empty string" in json.loads(out)["message"], out
