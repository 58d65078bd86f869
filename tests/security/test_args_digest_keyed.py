"""An audit record's `args_digest` is no test for guesses (`host/ledger/argsdigest.py`).

Records stored `digest_args(args)`, the plain sha256 of the arguments' canonical JSON (a
documented format). Whoever reads the log (an auditor given the audit table, a log shipper, a
backup of `host.db`) could hash candidates and find a weak secret an app sent: here a 4-digit
PIN in a user's custom field, and a short value in a lookup, found in 10,000 tries each. The
ledger now stores an HMAC of that digest under a key derived from the host's anchor key (never
in the store): the same guesses match nothing, while whoever holds the key still matches a
record to its arguments, and a chain holding records of both kinds still verifies.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from audithelp import audit_bodies
from gatehelp import GateRig, build_rig, install_fuzz_app

from host.clock import SystemClock
from host.errors import GateError
from host.home import Home
from host.ledger.argsdigest import ArgsKey
from host.ledger.audit import AuditRecord, digest_args

PINS = [f"{n:04d}" for n in range(10_000)]
PIN = "4821"  # what the app sent, among the guesses


def _calls(pin: str) -> list[tuple[str, dict[str, Any]]]:
    """Each kind of record a call's arguments reach: a write's allow (one commit with the
    server's write), a read's allow, a refusal by permission, a read the server refused."""
    return [
        ("users.create", {"username": "crm-bot", "name": "CRM", "type": "bot",
                          "custom_fields": {"pin": pin}}),
        ("users.get_by_username", {"username": "pin-" + pin}),
        ("messages.send", {"room_id": "r1", "text": "your code is " + pin}),  # not granted
        ("users.get", {"user_id": "missing-" + pin}),
    ]


def _rig(tmp_path: Path, group_reads: bool) -> GateRig:
    home = Home(tmp_path / "home").ensure()
    install_fuzz_app(home)
    return build_rig(home, SystemClock(), group_reads=group_reads)


def _run(rig: GateRig) -> None:
    for action, args in _calls(PIN):
        try:
            rig.gate.handle(rig.session, action, args)
        except GateError:
            pass  # the refusals are records too
    rig.ledger.checkpoint()  # the held reads' records on disk


@pytest.mark.parametrize("group_reads", [False, True])
def test_a_weak_argument_cannot_be_guessed_from_the_log(tmp_path: Path,
                                                        group_reads: bool) -> None:
    rig = _rig(tmp_path, group_reads)
    _run(rig)
    stored = {b["action"]: b["args_digest"] for b in audit_bodies(rig.home)
              if b.get("kind") == "decision" and b.get("args_digest")}
    assert set(stored) == {a for a, _ in _calls(PIN)}, stored  # every kind was recorded
    found = [action for i, (action, _args) in enumerate(_calls(PIN))
             if stored[action] in {digest_args(_calls(pin)[i][1]) for pin in PINS}]
    assert found == [], f"the PIN is found by guessing from the records of {found}"


def test_the_key_holder_still_matches_a_record_to_its_arguments(tmp_path: Path) -> None:
    rig = _rig(tmp_path, group_reads=True)
    _run(rig)
    key = ArgsKey((rig.home.keys_dir / "audit-anchor.key").read_bytes())
    stored = {(b["action"], b["args_digest"]) for b in audit_bodies(rig.home)
              if b.get("kind") == "decision" and b.get("args_digest")}
    # (a read the server refused has two records, its allow and its refusal: one digest)
    assert stored == {(a, key.mac(digest_args(args))) for a, args in _calls(PIN)}


def test_a_chain_with_plain_digests_before_keyed_ones_verifies(tmp_path: Path) -> None:
    # A record written before this release held the plain digest: the chain stays valid.
    rig = _rig(tmp_path, group_reads=False)
    rig.ledger.audit.append(AuditRecord(
        kind="decision", allowed=True, code="allow", app_id="fuzzapp",
        install_id=rig.install.install_id, action="users.get",
        args_digest=digest_args({"user_id": "old"}), write=False))
    _run(rig)
    assert digest_args({"user_id": "old"}) in [b.get("args_digest")
                                               for b in audit_bodies(rig.home)]
    result = rig.ledger.audit.verify()
    assert result.ok, result


def test_the_stored_digest_is_hmac_sha256_under_the_derived_key() -> None:
    import hashlib
    import hmac

    from host.ledger.argsdigest import ARGS_KEY_LABEL
    from host.ledger.records import AuditError

    anchor_key = bytes(range(32))
    key = ArgsKey(anchor_key)
    derived = hmac.digest(anchor_key, ARGS_KEY_LABEL, "sha256")
    for args in ({"n": 1}, {"user_id": "Mv6GxRewJSrqYTqnA"}, {"text": "é\x7f"}):
        plain = digest_args(args)
        assert key.mac(plain) == hmac.new(derived, bytes.fromhex(plain),
                                          hashlib.sha256).hexdigest()
    for bad in ("AB" * 32, "ab " * 21 + "a", "g" * 64, "0" * 63, "0" * 65):
        with pytest.raises(AuditError):
            key.mac(bad)
