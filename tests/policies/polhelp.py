"""Shared builders for policy tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from policies import Decision, Policy, Request, decide
from policies.loader import load_policy, load_policy_text, parse_text
from policies.policy import compile_policy

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "policies" / "demo.toml"
DEFAULT = ROOT / "policies" / "shipped" / "default.toml"
ALL_PERMS = frozenset(
    {
        "users.read", "users.create", "users.update", "users.deactivate", "roles.assign",
        "livechat.agents", "livechat.read", "livechat.write", "livechat.agent-display",
        "messages.send", "messages.read", "persistence", "http", "server.rest",
    }
)


def demo_policy() -> Policy:
    return load_policy(DEFAULT, DEMO)


def policy(body: str) -> Policy:
    return load_policy_text('schema = 1\nname = "t"\n' + body)


def unlinted(body: str) -> Policy:
    """A policy the loader would refuse (its linter binds), compiled anyway.

    For the engine's own guards only: they must hold even for a policy that reached the engine
    by a path other than the loader, so these tests feed it one directly.
    """
    src, findings = parse_text('schema = 1\nname = "t"\n' + body, "<unlinted>")
    assert src.model is not None and not findings, findings
    return compile_policy([(src.name, src.model)])


def ask(
    p: Policy,
    action: str,
    args: dict[str, Any],
    facts: dict[str, Any] | None = None,
    app: str = "agent-sync",
    grants: frozenset[str] = ALL_PERMS,
) -> Decision:
    return decide(p, grants, Request(app, "inst-1", action, args, facts or {}, 1_700_000_000.0))


def create(username: str = "ext-a", type_: str = "bot", **extra: Any) -> dict[str, Any]:
    return {"username": username, "name": "A", "type": type_, **extra}
