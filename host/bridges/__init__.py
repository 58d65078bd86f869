"""Actions the host serves itself, not the chat server: app persistence and outbound HTTP.

What it holds: `persistence.py` (each install's key-value rows in `host.db`, capped and counted)
and `httpout.py` (an app's outbound HTTP request, made by the host after the gate allowed it,
to the addresses the gate resolved).

May import: `host.store`, `host.errors`, `host.clock`, `sandbox.wirecaps` (the wire's frame
cap, which bounds a reply), the standard library and httpx. Imported
by: `apps` (uninstall removes an install's rows), the runtime.
"""
