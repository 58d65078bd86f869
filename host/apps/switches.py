"""The operator's enable and disable, signed: each switch is a consent of its own.

An install row's `enabled` flag is a column anyone who can write the store can flip. The chain's
record of the operator's last switch (`consentseq.audited_state`) was the only witness that an
enabled row was the operator's doing, and a record appended after the anchor carries no key: a
store writer who flipped the row back and appended a well-chained `operator.enable` passed that
check and `audit verify` (found by the audit review). So each switch the operator makes, from
the CLI or the console, re-signs the install's consented terms as a new consent (kind `enable`
or `disable`, the install's next number, `enabled` in the signed payload), which becomes the
install's consent in the same transaction as the flag, and its number goes into the switch's
ok outcome in the chain. Then `consent.verify_install` refuses an enabled row whose consent says
`enabled: false`, and putting back an older consent that says `true` fails the freshness check
every consent has (`consentseq`: the disable's number is kept by its row and by the chain).

Only a consent that verifies is re-signed: the terms signed are the ones the operator consented
to, never a row widened behind the host's back. A disable of an install that does not verify is
made unsigned (a disabled row needs no witness), and so are the host's own disables (tampering
detected, an app user deactivated). A consent made before switches were signed has no `enabled`:
its install is judged by the chain's record, as before.
"""
from __future__ import annotations

import json

from cryptography.exceptions import InvalidSignature

from host.apps.consent import make_consent, verify_install
from host.apps.consentseq import latest_and_switch, next_seq, payload_seq
from host.apps.installs import InstallRecord, InstallStore
from host.clock import Clock
from host.keys.keyring import Keyring


class SwitchRefused(Exception):
    """An enable of an install whose signed consent does not verify."""


def switch(store: InstallStore, keyring: Keyring, rec: InstallRecord, enabled: bool, *,
           clock: Clock, reason: str | None = None) -> int | None:
    """Enable or disable `rec` as the operator; returns the number of the consent that signs
    the switch (for the operator record's outcome: `consent_seq`), None for an unsigned
    disable. InstallChanged when the install changed after `rec` was read (nothing written)."""
    check = verify_install(rec, store, keyring, disable=False)
    if not check.ok:
        if enabled:
            raise SwitchRefused(check.problem or "its consent record does not verify")
        store.set_enabled(rec.install_id, False, reason)
        return None
    seq = next_seq(store, rec.install_id)
    consent = make_consent(
        keyring, install_id=rec.install_id, app_id=rec.app_id, version=rec.version,
        package_hash=rec.package_hash, manifest_hash=rec.manifest_hash, grants=rec.grants,
        policy_revision=check.policy_revision, now=clock.now(), seq=seq,
        kind="enable" if enabled else "disable", rest_as=rec.rest_as, enabled=enabled)
    store.set_enabled(rec.install_id, enabled, reason, consent=consent, expect=rec)
    return seq


def carried_switch(store: InstallStore, keyring: Keyring, rec: InstallRecord) -> bool:
    """What a new consent for `rec` (a regrant, an update) signs as its switch: the row's
    `enabled` only while the operator's latest switch, as signed, lets it run. The latest is the
    kept consent numbered `latest_seq` (a row deleted to hide a disable leaves that number to
    the chain: then nothing vouches, False); one made before switches were signed defers to the
    chain's last switch. So a consent given to mend an install, or an update applied before a
    host noticed a flag flipped behind the operator, never signs that flag."""
    if not rec.enabled:
        return False
    latest, last_switch = latest_and_switch(store, rec.install_id)
    for row in store.consent_rows(rec.install_id):
        if payload_seq(row.payload) != latest:
            continue
        try:
            keyring.verify(row.kid, row.payload, row.signature)
            signed = json.loads(row.payload).get("enabled")
        except (InvalidSignature, ValueError, AttributeError):
            continue
        return last_switch != "disable" if signed is None else signed is True
    return False
