"""A refused `http.request` to a name a permit lists makes one DNS query, not two, through the
real gate (a home, its policy, ledger and install; no child: calls enter at `Gate.handle`).

The gate decides a call first on its cached install record; a refusal there is decided again on
the current record (`Gate.handle`). Each decision looked the name up anew, so every refused call
sent two queries to whoever serves the name (and a lookup that timed out waited twice). The
second decision now reuses the first one's answer, within that call only: the next call looks
the name up again, since DNS answers change and a call is decided on the addresses it would
connect to."""
from __future__ import annotations

from pathlib import Path

import pytest
from gatehelp import GateRig, policy_rig

from host.errors import GateError
from host.server.errors import Unavailable

POLICY = '''
schema = 1
name = "http"
[[rule]]
id = "crm-api"
effect = "permit"
apps = ["crm"]
actions = ["http.request"]
[rule.when]
domains = ["*.example.test"]
'''


def _refused(rig: GateRig, url: str) -> GateError:
    with pytest.raises(GateError) as refused:
        rig.gate.handle(rig.session, "http.request", {"method": "GET", "url": url})
    return refused.value


def test_a_refused_call_looks_its_name_up_once(tmp_path: Path) -> None:
    rig = policy_rig(tmp_path, "crm", ["http"], {"http": POLICY})
    asked: list[str] = []

    def resolve(name: str) -> list[str]:
        asked.append(name)
        return [f"10.0.0.{len(asked)}"]  # a new (private: refused) answer each lookup
    rig.gate.resolve = resolve
    # the first call reads the install record (cold cache); the next ones are decided first on
    # the cached record, then again on the current one
    for n in range(1, 4):
        refused = _refused(rig, "https://api.example.test/")
        assert refused.code == "permission_denied"
        assert asked == ["api.example.test"] * n, asked  # before: 1, 3, 5 lookups
        # each call a lookup of its own, decided on that answer (what it would connect to)
        assert f"address 10.0.0.{n} " in refused.message, refused.message


def test_a_lookup_that_failed_is_not_made_again_in_the_same_call(tmp_path: Path) -> None:
    rig = policy_rig(tmp_path, "crm", ["http"], {"http": POLICY})
    asked: list[str] = []

    def resolve(name: str) -> list[str]:
        asked.append(name)
        raise Unavailable(f"the lookup of {name!r} got no answer")
    rig.gate.resolve = resolve
    for n in range(1, 4):
        assert _refused(rig, "https://api.example.test/").code == "timeout"
        assert asked == ["api.example.test"] * n, asked  # before: a timeout waited for twice
