"""The gate: the one place every bridge call from an app is decided.

What it holds: `gate.py` — a call's token and session are checked, the install record and the
operator's consent read, the policy engine asked, the ledger admits the decision (quota units
reserved, audit record durable) and only then the server (or a host action) is reached, and the
outcome recorded. `restbridge.py` — `rest.call`: a REST route that amounts to a bridge action
is decided and performed as that action through the gate's own steps (what each route amounts
to, and the routes no app may call, is `policies/restmap.py`); `rest_routes.py` — how a mapped
route's answer is rendered. `eventpolicy.py` —
which apps the policy lets an event reach (an event is data the app would otherwise read
through the gate), cached per policy revision. `readrefusal.py` — the refusal of an allowed read
no quota rates (no outcome record of its own), audited and charged to the refusal budget.
`httpquota.py` — an outbound request's quota taken before anything of it leaves the host: a call
over its quota refused before its host name is looked up, each redirect hop charged before it
is sent.

May import: `host.ledger`, `host.apps`, `host.keys`, `host.server`, `host.store`, `host.clock`,
`host.errors`, `policies`. Imported by: `supervise`, the runtime.
"""
