"""`policy fmt` keeps each comment with the table it was written in, even when a multi-line
string earlier in the file holds a line that looks like a table header or a comment.

Before: fmt read the file line by line without knowing it was inside a multi-line string, so a
description line `[[rule]]` counted as a new rule and every later comment moved down one rule.
A reviewer's "# DANGER: deactivates anyone" ended up above a harmless rule, the dangerous rule
left without it; a description line starting with `#` came out as a comment as well."""
from __future__ import annotations

import pytest

from policies.fmt import format_policy
from policies.loader import parse_text
from policies.policy import canonical_data

HEAD = 'schema = 1\nname = "x"\n\n# reviewed: read-only\n[[rule]]\nid = "reader"\n' \
       'effect = "permit"\napps = ["crm"]\nactions = ["users.get"]\n'
TAIL = ('\n# DANGER: deactivates anyone\n[[rule]]\nid = "deact"\neffect = "permit"\n'
        'apps = ["crm"]\nactions = ["users.deactivate"]\n\n[rule.when]\nany_user = true\n\n'
        '[[rule]]\nid = "reader2"\neffect = "permit"\napps = ["crm"]\nactions = ["users.get"]\n')

# Ways a rule's description can hold a line that reads as a header or a comment.
DESCRIPTIONS = {
    "basic": 'description = """\nnotes:\n[[rule]]\n# not a comment\n"""\n',
    "literal": "description = '''\n[[rule]]\n# not a comment\n'''\n",
    "escaped-quotes": 'description = """\nsay \\""" then\n[[rule]]\n# not a comment\n"""\n',
    "quotes-at-close": 'description = """\n[[rule]]\n# not a comment\n""""\n',
    "after-one-line-string": 'description = "a \\"\\"\\" b" # """\n',
    # U+2028 and U+0085 end a line for str.splitlines, not for TOML
    "line-separators": 'description = "a\u2028[[rule]]\u2028# not a comment\x85[[rule]]"\n',
}


def _rule_comment(out: str, rule_id: str) -> list[str]:
    """The comment lines right above the [[rule]] header of `rule_id`."""
    lines = out.split("\n")
    at = lines.index(f'id = "{rule_id}"') - 1
    assert lines[at] == "[[rule]]"
    above = []
    for ln in reversed(lines[:at]):
        if not ln.startswith("#"):
            break
        above.append(ln)
    return above[::-1]


@pytest.mark.parametrize("kind", sorted(DESCRIPTIONS))
def test_a_comment_stays_with_its_rule(kind: str) -> None:
    text = HEAD + DESCRIPTIONS[kind] + TAIL
    src, findings = parse_text(text, "t.toml")
    assert src.model is not None, findings
    out = format_policy(src.model, text)
    assert _rule_comment(out, "deact") == ["# DANGER: deactivates anyone"]
    assert _rule_comment(out, "reader2") == []
    assert _rule_comment(out, "reader") == ["# reviewed: read-only"]
    # a description's own lines are the description's, never a comment of the output
    assert "# not a comment" not in out.split("\n")
    again, _ = parse_text(out, "t.toml")
    assert again.model is not None
    assert canonical_data(again.model) == canonical_data(src.model)
    assert format_policy(again.model, out) == out


# Spellings TOML allows for the same table headers: each starts the table it names.
HEADERS = {
    "quoted": ('[["rule"]]', '["rule".when]'),
    "literal-quoted": ("[[ 'rule' ]]", "[ 'rule' . 'when' ]"),
    "spaced": ("[[ rule ]]", "[ rule . when ]"),
    "escaped": ('[["\\u0072ule"]]', '[rule."when"]'),
}


@pytest.mark.parametrize("kind", sorted(HEADERS))
def test_a_header_spelled_another_way_keeps_its_comments(kind: str) -> None:
    aot, when = HEADERS[kind]
    text = (HEAD + TAIL.replace("[[rule]]\nid = \"deact\"", f"{aot}\nid = \"deact\"")
            .replace("[rule.when]", when))
    src, findings = parse_text(text, "t.toml")
    assert src.model is not None, findings
    out = format_policy(src.model, text)
    assert _rule_comment(out, "deact") == ["# DANGER: deactivates anyone"]
    assert _rule_comment(out, "reader2") == []
