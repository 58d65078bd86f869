"""Loader and lint: hostile input becomes findings with codes and lines, never a crash or allow."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from polhelp import DEFAULT, DEMO

from policies.loader import MAX_FILE_BYTES, PolicyLoadError, load, load_policy, parse_text

HEAD = 'schema = 1\nname = "t"\n'
RULE = '[[rule]]\nid = "{id}"\neffect = "permit"\napps = ["a"]\nactions = ["{act}"]\n'


def codes(text: str) -> dict[str, list[int]]:
    src, pre = parse_text(text, "f.toml")
    from policies.loader import load_sources
    res = load_sources([src], pre)
    out: dict[str, list[int]] = {}
    for f in res.findings:
        out.setdefault(f.code, []).append(f.line)
    return out


@pytest.mark.parametrize("body,code,line", [
    ("[[rule\n", "STK002", 3),
    ('name = "x"\n', "STK003", 3),
    ('include = "../other.toml"\n', "STK004", 3),
    (RULE.format(id="r", act="users.get") + 'apps2 = ["x"]\n', "STK004", 8),
    (RULE.format(id="r", act="users.get").replace('["a"]', '"a"'), "STK005", 6),
    (RULE.format(id="r", act="users.get") + "[rule.when]\nany_user = \"yes\"\n", "STK005", 9),
    ('[[quota]]\nid="q"\napps=["a"]\naction="*"\nlimit=99999999999999999999\nwindow="1h"\n',
     "STK007", 7),
    ('[[quota]]\nid="q"\napps=["a"]\naction="*"\nlimit=1\nwindow="1 fortnight"\n', "STK006", 3),
    (RULE.format(id="r", act="users.nuke"), "STK010", 7),
    (RULE.format(id="r", act="users.get") + RULE.format(id="r", act="users.get"), "STK011", 9),
    (RULE.format(id="r", act="users.create") + '[rule.when]\nuser_types=["bot"]\n', "STK013", 7),
    (RULE.format(id="r", act="persistence").replace('["a"]', '["*"]'), "STK014", 6),
    (RULE.format(id="r", act="*"), "STK015", 7),
    ('[[quota]]\nid="q"\napps=["a"]\naction="users.create"\nlimit=1\nwindow="1h"\n', "STK016", 6),
    ('[[quota]]\nid="q"\napps=["a"]\naction="*"\nlimit=0\nwindow="1h"\n', "STK017", 7),
    ('[[quota]]\nid="q"\napps=["a"]\naction="*"\nlimit=1\nwindow_s=-5\n', "STK018", 8),
    ('[[quota]]\nid="q"\napps=["a"]\naction="*"\nlimit=1\nwindow="400d"\n', "STK019", 8),
    ('[[quota]]\nid="q"\napps=["a"]\naction="*"\nlimit=5000000\nwindow="1d"\n', "STK019", 7),
    (RULE.format(id="r", act="roles.assign") + '[rule.when]\nroles=["bot","Admin"]\n', "STK020",
     9),
    (RULE.format(id="r", act="users.create") + '[rule.when]\nuser_types=["bot"]\n'
     'username_pattern="^(a)\\\\1$"\n', "STK022", 10),
    (RULE.format(id="r", act="users.create") + '[rule.when]\nuser_types=["bot"]\n'
     'username_pattern="^(?=a)a$"\n', "STK022", 10),
    (RULE.format(id="r", act="users.create") + '[rule.when]\nuser_types=["bot"]\n'
     f'username_pattern="{"a" * 513}"\n', "STK022", 10),
    (RULE.format(id="r", act="users.create") + '[rule.when]\nuser_types=["bot"]\n'
     'username_pattern="(["\n', "STK022", 10),
    (RULE.format(id="r", act="http.request") + '[rule.when]\ndomains=["x.test"]\n'
     'allow_private=["10.0.0.1"]\n', "STK023", 10),
    ('[[rule]]\nid="f"\neffect="forbid"\napps=["a"]\nactions=["users.get"]\n', "STK024", 3),
    (RULE.format(id="r", act="roles.assign") + '[rule.when]\nroles=["аdmin"]\n', "STK025", 9),
    (RULE.format(id="r", act="rest.call") + '[rule.when]\nrest_routes=["POST /api/v1/login"]\n'
     'rest_fields=[]\n', "STK035", 9),
    (RULE.format(id="r", act="http.request") + '[rule.when]\ndomains=["evil.com/x"]\n', "STK025",
     9),
    (RULE.format(id="r", act="users.get") + '[rule.when]\ndomains=["x.test"]\n', "STK026", 9),
    (RULE.format(id="r", act="livechat.agents") + '[rule.when]\nany_user=true\n', "STK027", 9),
    (RULE.format(id="r", act="http.request"), "STK028", 7),
    ('[[rule]]\nid="f"\neffect="forbid"\napps=["a"]\nactions=["http.request"]\n'
     '[rule.when]\nallow_private=["10.0.0.1"]\n', "STK031", 9),
    (RULE.format(id="r", act="roles.assign") + '[rule.when]\nroles=["bot"]\n', "STK033", 7),
    (RULE.format(id="r", act="roles.assign") + '[rule.when]\nroles=["bot","livechat-agent"]\n',
     "STK036", 9),
])
def test_finding_codes_and_lines(body: str, code: str, line: int) -> None:
    found = codes(HEAD + body)
    assert code in found, found
    assert line in found[code], found


def test_the_agent_role_is_flagged_only_without_a_permit_for_making_agents() -> None:
    body = RULE.format(id="r", act="users.create") + (
        '[rule.when]\nuser_types=["bot"]\nroles=["livechat-agent"]\n')
    assert "STK036" in codes(HEAD + body)
    agents = RULE.format(id="g", act="livechat.add_agent")
    assert "STK036" not in codes(HEAD + body + agents)
    # roles.remove of it is livechat.remove_agent, which a permit for add_agent does not cover
    remove = RULE.format(id="x", act="roles.remove") + '[rule.when]\nroles=["livechat-agent"]\n'
    assert "STK036" in codes(HEAD + remove + agents)


def test_any_user_with_a_role_that_impersonates_is_said_to_reach_no_person() -> None:
    # What the servers decide behind the gate (`host.server.impersonation`), said where the
    # reviewer reads the permit: any_user does not let an app make a person a bot.
    body = RULE.format(id="r", act="roles.assign") + (
        '[rule.when]\nany_user=true\nroles=["livechat-agent", "bot"]\n')
    found = codes(HEAD + body)
    assert found.get("STK040") == [10], found
    assert "STK040" not in codes(HEAD + body.replace("any_user=true", "any_user=false"))
    assert "STK040" not in codes(HEAD + body.replace('"bot"', '"user"'))
    # Taking the role away, or giving it to the users it creates, impersonates no one new.
    for act in ("roles.remove", "users.create"):
        assert "STK040" not in codes(HEAD + body.replace("roles.assign", act)), act


def test_schema_version_and_missing_fields() -> None:
    assert "STK006" in codes('schema = 2\nname = "t"\n')
    assert "STK006" in codes('name = "t"\n')


def test_deep_nesting_is_a_finding_not_a_crash() -> None:
    assert "STK008" in codes(HEAD + "x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert "STK008" in codes(HEAD + "x = " + "[" * 20 + "]" * 20 + "\n")


def test_errors_refuse_the_whole_set(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(HEAD + RULE.format(id="r", act="users.get"))
    (tmp_path / "bad.toml").write_text(HEAD.replace('"t"', '"u"') + "include = 'x'\n")
    with pytest.raises(PolicyLoadError) as exc:
        load_policy(tmp_path)
    assert any(f.code == "STK004" for f in exc.value.findings)


def test_symlink_and_size_cap_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.toml"
    real.write_text(HEAD)
    (tmp_path / "link.toml").symlink_to(real)
    res = load([tmp_path / "link.toml"])
    assert res.policy is None and res.findings[0].code == "STK001"
    big = tmp_path / "big.toml"
    big.write_text(HEAD + "# " + "x" * MAX_FILE_BYTES + "\n")
    assert load([big]).findings[0].code == "STK001"
    assert load([tmp_path / "missing.toml"]).findings[0].code == "STK001"


def test_directory_skips_cases_and_revision_is_order_independent(tmp_path: Path) -> None:
    a = HEAD + RULE.format(id="r1", act="users.get") + RULE.format(id="r2", act="messages.list")
    b = HEAD + RULE.format(id="r2", act="messages.list") + RULE.format(id="r1", act="users.get")
    (tmp_path / "one.toml").write_text(a)
    (tmp_path / "x.cases.toml").write_text("not toml [[[")
    rev_a = load_policy(tmp_path).revision
    (tmp_path / "one.toml").write_text("# a comment\n" + b)
    assert load_policy(tmp_path).revision == rev_a
    (tmp_path / "one.toml").write_text(b.replace("messages.list", "messages.read"))
    assert load_policy(tmp_path).revision != rev_a


def test_conflicting_ceilings_smallest_wins(tmp_path: Path) -> None:
    for n, c in (("a", 30), ("b", 7)):
        (tmp_path / f"{n}.toml").write_text(f'schema = 1\nname = "{n}"\n[workspace]\n'
                                            f"max_active_app_users = {c}\n")
    res = load([tmp_path])
    assert res.policy is not None and res.policy.seat_ceiling == 7
    assert any(f.code == "STK029" for f in res.findings)


def test_shipped_files_pass_check() -> None:
    res = load([DEFAULT, DEMO])
    assert res.policy is not None
    assert not [f for f in res.findings if f.severity in ("error", "security-warning")]


def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "u.toml"
    p.write_bytes(b"\xff\xfe")
    assert load([p]).findings[0].code == "STK001"
    if os.geteuid() != 0:
        p.write_text(HEAD)
        p.chmod(0)
        assert load([p]).findings[0].code == "STK001"


def test_two_quotas_on_the_same_calls_are_named_for_what_the_engine_does() -> None:
    """STK030 once said the engine "keeps them apart" only when two quotas met on one key;
    each quota now always has a counter of its own, and both bind."""
    q = '[[quota]]\nid="{id}"\napps=["a"]\naction="users.get"\nlimit={n}\nwindow="1h"\n'
    src, pre = parse_text(HEAD + RULE.format(id="r", act="users.get")
                          + q.format(id="q1", n=5) + q.format(id="q2", n=9), "f.toml")
    from policies.loader import load_sources
    (f,) = [f for f in load_sources([src], pre).findings if f.code == "STK030"]
    assert "own counter" in f.message and "both bind" in f.message
    assert "keeps them apart" not in f.message
