"""The test `app new` writes runs the app under the operator's rule `app new` wrote beside it.

The generated test checked the app's calls against its grants only. An author's first change
(a new permission in app.toml, a call that uses it) passed those tests, and the host refused the
call in production: the rule beside the app permits only what the template asked for. The
generated tests now load that rule (`use_policy`), so they fail where the host would refuse,
naming the rule, as README's "Writing an app" shows.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from clihelp import Run, cli_fixture, home_fixture  # noqa: F401  (the fixtures)


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *args, str(folder)], capture_output=True, text=True,
                          cwd=folder.parent)


def test_a_call_the_rule_does_not_permit_fails_the_generated_tests(cli: Run,
                                                                   tmp_path: Path) -> None:
    folder = tmp_path / "greeter"
    assert cli("app", "new", "greeter", "--dir", str(folder)).exit_code == 0
    assert _pytest(folder).returncode == 0  # as generated: the app and its rule agree
    toml = folder / "app.toml"
    toml.write_text(toml.read_text() + '\n[[permission]]\nname = "users.read"\n'
                    'reason = "Looks up the agent who will serve the visitor."\n')
    main = folder / "main.py"
    main.write_text(main.read_text().replace(
        '        ctx.messages.send(', '        ctx.users.get(ctx.app_user_id)\n'
        '        ctx.messages.send('))
    r = _pytest(folder, "-k", "test_greets_the_visitor")  # the test the change concerns
    assert r.returncode == 1, r.stdout[-3000:]
    assert "users.get" in r.stdout and "policy_denied" in r.stdout, r.stdout[-3000:]
