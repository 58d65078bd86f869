"""What the console tests share (the fixture itself is in conftest.py)."""
from __future__ import annotations

from dataclasses import dataclass

import httpx

from host.home import Home
from host.server import EmbeddedServer

PASSWORD = "operator password"
# An author's name that tries markup, a script, an invisible character and the host's own
# words (a bidirectional control is refused in a name at install: `argrules.display_problem`).
HOSTILE_NAME = "<b>Signed by trusted publisher</b><script>alert(1)</script>\\u200bevil"
# The origin the proxy tests' console is served as (`serve --console-origin`).
PROXY_ORIGIN = "https://console.example.com"
SRC = "from stockade import App\n\nclass TestApp(App):\n    pass\n"


@dataclass
class Served:
    url: str
    home: Home
    server: EmbeddedServer


def signed_in(s: Served) -> httpx.Client:
    """An HTTP client signed in to the console as the operator."""
    c = httpx.Client(base_url=s.url, timeout=10)
    r = c.post("/console/login", data={"username": "operator", "password": PASSWORD},
               headers={"Origin": s.url})
    assert r.status_code in (200, 303), r.text
    return c


# A policy with a quota on agent-sync's creations (LIMIT a 10 minute window per install) and a
# seat ceiling: the quotas page's and the CLI's figures are read against it.
QUOTA_POLICY = '''schema = 1
name = "console"
[workspace]
max_active_app_users = 5
[[rule]]
id = "sync-create"
effect = "permit"
apps = ["agent-sync"]
actions = ["users.create"]
[rule.when]
user_types = ["bot"]
[[quota]]
id = "sync-creates"
apps = ["agent-sync"]
action = "users.create"
limit = LIMIT
window = "10m"
scope = "install"
'''
