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
from httprig import get, http_policy, record_lookups

from host.errors import GateError
from host.server.errors import Unavailable

POLICY = http_policy("crm", ["*.example.test"])


def _refused(rig: GateRig, url: str) -> GateError:
    with pytest.raises(GateError) as refused:
        get(rig, url)
    return refused.value


def test_a_refused_call_looks_its_name_up_once(tmp_path: Path) -> None:
    rig = policy_rig(tmp_path, "crm", ["http"], {"http": POLICY})
    # a new (private: refused) answer each lookup
    asked = record_lookups(rig, lambda _name, n: [f"10.0.0.{n}"])
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

    def no_answer(name: str, _n: int) -> list[str]:
        raise Unavailable(f"the lookup of {name!r} got no answer")
    asked = record_lookups(rig, no_answer)
    for n in range(1, 4):
        assert _refused(rig, "https://api.example.test/").code == "timeout"
        assert asked == ["api.example.test"] * n, asked  # before: a timeout waited for twice
