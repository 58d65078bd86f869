"""The disclosure shows policy limits per permission, refusals, and dangerous combinations."""
from __future__ import annotations

import io

import pytest
from apps_helpers import app_files
from rich.console import Console

from host.apps.disclosure import NOT_PERMITTED, build_disclosure, render_disclosure
from host.apps.packages import package_from_files
from host.apps.publisher import SignatureCheck
from policies.loader import PolicyLoadError, load_policy_text, parse_text
from policies.policy import Policy, compile_policy

POLICY = """
schema = 1
name = "test"

[workspace]
max_active_app_users = 7

[[rule]]
id = "sync-create"
effect = "permit"
apps = ["agent-sync"]
actions = ["users.create"]
[rule.when]
user_types = ["user"]
roles = ["livechat-agent", "admin"]

[[rule]]
id = "sync-roles"
effect = "permit"
apps = ["agent-sync"]
actions = ["roles.assign"]
[rule.when]
roles = ["livechat-agent"]

[[rule]]
id = "sync-http"
effect = "permit"
apps = ["agent-sync"]
actions = ["http.request"]
[rule.when]
domains = ["crm.example.com"]

[[quota]]
id = "sync-creates"
apps = ["agent-sync"]
action = "users.create"
limit = 5
window = "1h"
scope = "app"
"""

PERMS = ("livechat.read", "users.create", "roles.assign", "livechat.agents", "http",
         "messages.read")


def _unlinted(text: str) -> Policy:
    """POLICY lists `admin` (lint STK020 refuses it at load); the disclosure must still never
    present it as grantable if such a policy reached it, so it is compiled without the lint."""
    with pytest.raises(PolicyLoadError, match="STK020"):
        load_policy_text(text)
    src, findings = parse_text(text, "<unlinted>")
    assert src.model is not None and not findings
    return compile_policy([(src.name, src.model)])


def _disclosure(policy=None, sig=SignatureCheck("unsigned")):
    pkg = package_from_files(app_files(permissions=PERMS))
    return build_disclosure(pkg.manifest, pkg.content_hash, sig, policy)


def test_limits_and_refusals_from_policy() -> None:
    d = _disclosure(_unlinted(POLICY))
    by = {p.name: p for p in d.permissions}
    create = "\n".join(by["users.create"].limits)
    assert by["users.create"].permitted is True
    assert "user types: user" in create
    assert "livechat-agent" in create and "admin" not in create.split("never")[0]
    assert "at most 5 users.create per 1h (per app)" in create
    assert "workspace ceiling: 7" in create
    assert "roles: livechat-agent" in "\n".join(by["roles.assign"].limits)
    assert "never admin-class roles" in "\n".join(by["roles.assign"].limits)
    # the role is listed, but making agents is not permitted: the screen says what it needs
    for name in ("roles.assign", "users.create"):
        assert ("livechat-agent makes a livechat agent: giving it is livechat.add_agent too, "
                "with its own permission (livechat.agents) and rules") in by[name].limits
    assert "domains: crm.example.com" in "\n".join(by["http"].limits)
    # nothing permits livechat.agents for this app
    assert by["livechat.agents"].permitted is False
    assert by["livechat.agents"].limits[0] == NOT_PERMITTED
    assert d.policy_revision is not None and d.policy_revision.startswith("sha256:")


def test_dangerous_combinations_called_out() -> None:
    d = _disclosure()
    codes = {x.code: x.message for x in d.dangers}
    assert "mint agents with roles" in codes["D001"]
    assert "off-site" in codes["D006"]
    assert "D004" in codes  # roles.assign at all
    assert all(p.permitted is None for p in d.permissions)  # no policy: limits unknown


def test_rendered_and_json_forms() -> None:
    d = _disclosure(_unlinted(POLICY))
    buf = io.StringIO()
    render_disclosure(d, Console(file=buf, width=200, force_terminal=False))
    text = buf.getvalue()
    assert "UNSIGNED" in text and "mint agents with roles" in text
    assert "policy does not permit this" in text
    doc = d.to_dict()
    assert doc["signature"]["status"] == "unsigned"
    assert {x["code"] for x in doc["dangers"]} >= {"D001", "D006"}
    assert doc["settings"] == []


def test_unsigned_shown_in_red() -> None:
    d = _disclosure()
    buf = io.StringIO()
    render_disclosure(d, Console(file=buf, width=200, force_terminal=True, color_system="standard"))
    line = next(ln for ln in buf.getvalue().splitlines() if "UNSIGNED" in ln)
    assert "\x1b[1;31m" in line  # bold red
