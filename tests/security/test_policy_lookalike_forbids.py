"""A forbid cannot look like it forbids a name or a field and forbid nothing (DESIGN rule 12).

Attack (held before the fix): usernames are ASCII (`[A-Za-z0-9._-]`) and custom field keys are
identifiers (`argrules.FIELD_KEY_RE`), but a policy's `username_pattern` and
`custom_field_keys` were taken as written. A forbid of `аdmin|root` (a Cyrillic "а") or of the
field `s\\u200bsn` (a zero-width space) reads as forbidding `admin` and `ssn`, loaded with no
finding, and matched nothing: the real gate let the app create "admin" and set "ssn". Now such
an entry in a forbid refuses the set (STK022, STK025, naming the character); in a permit,
where it only allows nothing, it is a warning.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from gatehelp import policy_rig

from host.errors import GateError
from policies.loader import PolicyLoadError, load_policy_text

APP = "maker"
PERMIT = f'''
schema = 1
name = "maker"
[[rule]]
id = "maker-create"
effect = "permit"
apps = ["{APP}"]
actions = ["users.create"]
[rule.when]
user_types = ["user"]
username_pattern = "[a-z0-9-]{{3,40}}"
[[rule]]
id = "maker-fields"
effect = "permit"
apps = ["{APP}"]
actions = ["users.set_custom_fields"]
[rule.when]
custom_field_keys = ["externalId", "ssn"]
[[quota]]
id = "maker-create-q"
apps = ["{APP}"]
action = "users.create"
limit = 20
window = "1h"
'''
FORBIDS = f'''
[[rule]]
id = "maker-no-staff"
effect = "forbid"
apps = ["{APP}"]
actions = ["users.create"]
[rule.when]
username_pattern = "{{staff}}"
[[rule]]
id = "maker-no-ssn"
effect = "forbid"
apps = ["{APP}"]
actions = ["users.set_custom_fields"]
[rule.when]
custom_field_keys = ["{{field}}"]
'''


def _policy(staff: str, field: str) -> str:
    return PERMIT + FORBIDS.format(staff=staff, field=field)


def test_plain_forbids_hold_at_the_gate(tmp_path: Path) -> None:
    rig = policy_rig(tmp_path, APP, ["users.create", "users.update"],
                     {"maker": _policy("admin|root", "ssn")})
    with pytest.raises(GateError, match="maker-no-staff"):
        rig.gate.handle(rig.session, "users.create",
                        {"username": "admin", "name": "A", "type": "user"})
    made = rig.gate.handle(rig.session, "users.create",
                           {"username": "helper", "name": "H", "type": "user"})
    with pytest.raises(GateError, match="maker-no-ssn"):
        rig.gate.handle(rig.session, "users.set_custom_fields",
                        {"user_id": made["id"], "fields": {"ssn": "123"}})


@pytest.mark.parametrize(("staff", "field", "code", "shown"), [
    ("\u0430dmin|root", "ssn", "STK022", "U+0430"),   # Cyrillic a
    ("admin\u200b|root", "ssn", "STK022", "U+200B"),  # zero-width space
    ("admin|root", "s\u200bsn", "STK025", "U+200B"),
    ("admin|root", "\u0455sn", "STK025", "U+0455"),   # Cyrillic dze
])
def test_a_lookalike_forbid_is_refused(staff: str, field: str, code: str, shown: str) -> None:
    with pytest.raises(PolicyLoadError) as exc:
        load_policy_text(_policy(staff, field), "maker.toml")
    hit = [f for f in exc.value.findings if f.code == code and f.severity == "error"]
    assert hit and shown in hit[0].message, exc.value.findings


def test_a_lookalike_in_a_permit_allows_nothing_and_is_a_warning() -> None:
    text = PERMIT.replace('"ssn"]', '"\u0455sn"]').replace("[a-z0-9-]", "[a-z0-9-\u00e9]")
    pol = load_policy_text(text, "maker.toml")  # loads: such an entry only allows nothing
    assert pol is not None
