"""Apps as the operator meets them: packages, manifests, signatures, disclosure, consent, installs.

What it holds: `manifest.py` (the app.toml model), `packages.py` (validation, deterministic zips
and their content hash), `package_rules.py` (a package's caps and path rules),
`package_sources.py` (bounded reading of folders and zips), `package_store.py` (writing packages,
and the host's stored copies), `publisher.py` (publisher signatures and the trust store),
`disclosure.py` (what an app will be able to do, shown before install), `consent.py`
(host-signed consent records), `installs.py` (install records and their change counter),
`appdiff.py` (an update's diff), `operations.py` (install and update as one step each),
`scaffold.py` and `templates/` (`stockade app new`), `lifecycle_seams.py` (server and
persistence work at uninstall).

May import: `host.keys`, `host.store`, `host.bridges`, `host.server`, `host.clock`, `host.home`,
`host.errors`, `policies`. Imported by: `gate`, `supervise`, the runtime, the CLI, `demo`, `bench`.
"""
