"""Child processes: spawning, confining, feeding and killing them.

What it holds: `zygote_client.py` (the host's end of the pre-warmed zygote that forks children),
`prefork.py` (confined, app-less children kept ready), `spawner.py` (starts children through
the zygote, the pool or a fresh interpreter), `child.py` (one confined child: handshake, load,
deliver an event, answer its bridge calls inline), `logcap.py` (the host's cap on what one
event or load may log), `watchdog.py` (deadlines for running events), `supervisor.py` (one
`AppRunner` per enabled install: its queue, restarts and backoff),
`pump.py` (one event written to every idle app at once), `delivery.py` (one event's outcomes
across apps), `served.py` (the actions the host serves itself: persistence,
outbound HTTP, `rest.call` through `restcall.py`), `sandbox_exec.py` (`stockade sandbox exec`).

May import: `host.gate`, `host.apps`, `host.bridges`, `host.store`, `host.keys`, `host.server`,
`host.clock`, `host.errors`, `sandbox.protocol`, `sandbox.wirecaps`, `sandbox.wire`,
`sandbox.zygote`. Imported by: the runtime, `doctor`, the CLI, `demo`, `bench`.
"""
