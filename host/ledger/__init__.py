"""The ledger: exact quotas and the hash-chained audit log, committed together.

What it holds: `quota.py` (durable sliding-window logs and the seat count), `audit.py` (the
append-only, hash-chained, anchored audit log and its verifier), `ledger.py` (the two over one
connection: admit a call's decision and reserve its units in one transaction, then record its
outcome), and `lease.py` (which host serving a home may settle the unfinished calls in it).

May import: `host.store`, `host.clock`, the standard library. Imported by: `gate`, the runtime,
the CLI (`audit`), `bench`.
"""
