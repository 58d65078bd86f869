"""The ledger: exact quotas and the hash-chained audit log, committed together.

What it holds: `quota.py` (durable sliding-window logs and the seat count), `audit.py` (the
append-only, hash-chained, anchored audit log; `anchor.py` its anchor file and key, `verify.py`
the walk that verifies it, `trusted.py` the head this process may anchor), `ledger.py` (the two
over one connection: admit a call's decision and reserve its units in one transaction, then
record its outcome; `unsettled.py` the ended calls whose outcome the server could not say
yet, asked about again by the upkeep), `lease.py` (which host serving a home may settle the
unfinished calls in it), and `operator.py` (the operator's own records: rule 14, audit before act).

May import: `host.store`, `host.keys`, `host.clock`, `host.home`, the standard library.
Imported by: `apps`, `gate`, the runtime, the CLI (`audit`, the operator's commands), `bench`.
"""
