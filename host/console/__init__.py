"""The operator console in the browser, served by `stockade serve` at `/console` on loopback.

It signs in the server's admins (the embedded server's users and passwords, or a Rocket.Chat
workspace's through its login: `operators.py`), shows the apps on the
serving host with their live state, switches them on and off with the CLI's own audited
operations, and searches the audit chain. Everything is server-rendered (Jinja2, autoescaped),
no script runs in the page, and every answer carries a strict Content-Security-Policy; sessions
are HttpOnly, SameSite=Strict cookies, and every change needs the session's CSRF token and a
same-origin request.

May import: `host.server` (sign-in), `host.apps`, `host.ledger`, `host.supervise.status`,
`host.home`, `host.inert`. Imported only by `host.cli.serve_cmd` and `host.cli.serve_remote`.
"""
