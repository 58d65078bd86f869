"""The host's own keys and what it signs with them.

What it holds: the Ed25519 signing keyring (`keyring.py`: rotate without downtime, verify with
any key still trusted) and capability tokens (`tokens.py`: mint and verify the claims a child
presents at its handshake), and the registry of minted tokens (`registry.py`: list and revoke,
for good; a re-mint revokes the earlier token).

May import: `host.clock`, `host.store`, `cryptography`, the standard library. Imported by:
`apps` (consent records are signed), `gate`, `supervise`, the runtime, the CLI.
"""
