"""Every bridge call the example apps make in their own tests is one the demo policy allows.

The example tests run through the harness, which models grants but not policy. Here each call
the harness lets through is also put to the real policy engine with the demo policy (and the
shipped default), with the facts the host would supply; a call the harness allowed but the
policy would refuse means an example app drifted outside `examples/policies/demo.toml`.
"""
from pathlib import Path

import pytest
from harness_helpers import EXAMPLE_APPS, run_example_tests

from policies.engine import decide
from policies.loader import load_policy
from policies.types import Request
from sandbox.errors import PermissionDenied
from sandbox.harness import AppHarness

ROOT = Path(__file__).resolve().parents[2]


def _facts(h: AppHarness, action: str, args: dict) -> dict:
    facts: dict = {}
    uid = args.get("user_id")
    if uid in h.server.users:
        facts["target_created_by_app"] = h.server.users[uid]["created_by_app"]
        facts["target_is_own_app_user"] = uid == h.app_user["id"]
    if "role" in args or args.get("roles"):
        facts["role_privileged"] = False  # the harness refuses admin-class roles itself
    if action == "http.request":
        facts["resolved_ips"] = ["127.0.0.1"]  # the demo resolves crm.localtest to loopback
    return facts


@pytest.mark.parametrize("app", EXAMPLE_APPS)
def test_example_calls_stay_within_the_demo_policy(app, monkeypatch):
    policy = load_policy(ROOT / "policies/shipped/default.toml",
                         ROOT / "examples/policies/demo.toml")
    outside: list[str] = []
    checked: list[str] = []
    real_gate = AppHarness._gate

    def gate(self, action, args):
        req = Request(self.app_id, "install-1", action, dict(args),
                      _facts(self, action, args), 0.0)
        decision = decide(policy, self.grants, req)
        checked.append(action)
        try:
            result = real_gate(self, action, args)
        except PermissionDenied:
            raise  # the harness refused it too (a withheld grant, a domain): as expected
        except Exception:
            if not decision.allowed:
                outside.append(f"{action} {dict(args)}: {decision.message}")
            raise
        if not decision.allowed:
            outside.append(f"{action} {dict(args)}: {decision.message}")
        return result

    monkeypatch.setattr(AppHarness, "_gate", gate)
    assert run_example_tests(app) > 0
    assert checked, "the example tests made no bridge calls"
    assert outside == []


@pytest.mark.parametrize("app", EXAMPLE_APPS)
def test_examples_work_when_the_store_answers_none_for_a_missing_key(app, monkeypatch):
    """The API documents NotFound for a missing key; host/runtime.py currently answers None.
    The examples must behave the same under either answer."""
    from sandbox.harness import FakeServer

    def get_or_none(self, key):
        rec = self.store.get(key)
        return None if rec is None else rec["value"]

    monkeypatch.setattr(FakeServer, "persistence_get", get_or_none)
    assert run_example_tests(app) > 0
