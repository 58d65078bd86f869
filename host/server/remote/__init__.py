"""A real Rocket.Chat workspace behind the `ServerAdapter` protocol, over its REST API, with its
omnichannel webhooks as the event source (docs/ROCKETCHAT.md).

What it holds: the pooled, bounded REST client (`client.py`, its whole-call deadline under
httpx in `deadline.py`), Stockade's own record of the
workspace in `host.db` (`owned.py`: ownership, seats, remote writes in flight, the webhook inbox,
delivered events), REST documents turned into server shapes (`convert.py`), the adapter
(`core.py`, `rooms.py`, `server.py`: `RemoteServer`), the webhook payload shapes in one module
(`webhook.py`), the host's receiving endpoint (`receiver.py`), the event depth of the
messages apps sent, kept in memory for their webhooks (`sentcauses.py`), the stand-in's sender
(`standin_hooks.py`) and the home's connection settings (`config.py`).

May import: `host.server` (errors, shapes, events, principals, limits; and for the stand-in's
sender, the embedded server), `host.store`, `host.clock`, `host.inert` (the workspace's words
on the operator's screen). Imported by: the runtime, the CLI, the
demo, the bench and the doctor. Nothing in `host.server` imports it.
"""
