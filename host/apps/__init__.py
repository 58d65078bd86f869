"""Apps as the operator meets them: packages, manifests, signatures, disclosure, consent, installs.

What it holds: `manifest.py` (the app.toml model), `packages.py` (deterministic zips and their
content hash), `publisher.py` (publisher signatures and the trust store), `disclosure.py` (what
an app will be able to do, shown before install), `consent.py` (host-signed consent records),
`installs.py` (install records and their change counter), `appdiff.py` (an update's diff),
`operations.py` (install and update as one step each), `scaffold.py` and `templates/`
(`stockade app new`), `lifecycle_seams.py` (server and persistence work at uninstall).

May import: `host.keys`, `host.store`, `host.bridges`, `host.server`, `host.clock`, `host.home`,
`host.errors`, `policies`. Imported by: `gate`, `supervise`, the runtime, the CLI, `demo`, `bench`.
"""
