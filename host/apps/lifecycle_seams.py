"""Server and persistence work the app CLI needs at uninstall and in disclosures.

The CLI runs in its own short-lived process: it opens the home's server (the embedded one in
HOME/server.db, or the Rocket.Chat workspace the home is connected to) and the persistence rows
(HOME/host.db) directly. A running host notices the uninstall through the
install store and stops the app's child on its own.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from host.apps.installs import InstallRecord
from host.apps.manifest import Manifest
from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer
from host.server.errors import Unavailable
from host.server.remote.config import ConfigError
from host.store import Conn

if TYPE_CHECKING:  # the remote server's module brings the HTTP client: only when connected
    from host.server.remote.server import Workspace


@contextlib.contextmanager
def _server(home: Home) -> Iterator[Workspace | None]:
    """The home's server: the Rocket.Chat workspace it is connected to (docs/ROCKETCHAT.md),
    else the embedded one (None when the home has none yet)."""
    from host.server.remote.config import connected, open_remote

    if connected(home):
        remote = open_remote(home, SystemClock())
        try:
            yield remote
        finally:
            remote.close()
    elif home.has_server_data():
        yield EmbeddedServer(home.server_store, SystemClock())
    else:
        yield None


def count_app_users(home: Home, record: InstallRecord) -> int | None:
    """How many users the app created (None when this home has no server yet)."""
    with _server(home) as server:
        return None if server is None else int(server.count_users_created_by(record.app_id))


# What says the chat server cannot be asked (a connection the host will not use or cannot
# read, a workspace that does not answer), as opposed to an answer: a count or an action that
# meets one says so, never "0" nor an internal error.
SERVER_UNASKABLE: tuple[type[Exception], ...] = (ConfigError, Unavailable)


def app_users_counted(home: Home, record: InstallRecord) -> tuple[int | None, str]:
    """(how many users the app created, "") or (None, why that cannot be told: no chat server
    yet, or one the host cannot ask), for the uninstall questions: a count the host could not
    take is never shown as 0, and never makes deactivating the default."""
    try:
        count = count_app_users(home, record)
    except SERVER_UNASKABLE as exc:
        return None, f"the chat server cannot be asked: {exc}"
    if count is None:
        return None, "no chat server is connected to this home"
    return count, ""


def app_agents_counted(home: Home, record: InstallRecord) -> int | None:
    """`app_agents`, or None when the server cannot be asked (`app_users_counted` says why)."""
    try:
        return app_agents(home, record)
    except SERVER_UNASKABLE:
        return None


def deactivate_app_users(home: Home, record: InstallRecord) -> int | None:
    """Deactivate every user the app created, and its own app user. None without a server."""
    with _server(home) as server:
        if server is None:
            return None
        count = int(server.deactivate_users_created_by(record.app_id))
        server.remove_app_user(record.app_id)
        return count


def app_agents(home: Home, record: InstallRecord) -> int | None:
    """How many livechat agents the app brought (its users and its app user). None without a
    server."""
    with _server(home) as server:
        return None if server is None else len(server.agents_of_app(record.app_id))


def remove_app_agents(home: Home, record: InstallRecord) -> int | None:
    """Stop the app's agents being routed anything (uninstall --agents remove)."""
    with _server(home) as server:
        return None if server is None else int(server.remove_agents_of_app(record.app_id))


def count_app_data(home: Home, record: InstallRecord) -> int:
    """How many persistence rows the install holds (what `remove_app_data` would delete)."""
    from host.bridges.persistence import PersistenceStore

    if not home.has_host_store():
        return 0
    store = PersistenceStore(home.host_store)
    try:
        return len(store.keys(record.install_id))
    finally:
        store.close()


def transfer_keeps(home: Home, record: InstallRecord, manifest: Manifest) -> str:
    """What an update to `manifest` consented with a publisher transfer hands the new
    publisher's code along with the install it keeps: the records the app stored (keyed by
    install id) and the secret settings set for it that the update keeps (those `manifest`
    still calls secret: `operations.default_settings`). Why: the operator must hear it before
    saying yes (`app consent`, the console's review); an install of the id after an uninstall
    starts empty, so only a transfer at an update's consent carries them."""
    stored = count_app_data(home, record)
    secrets = sorted(k for k in record.secret_keys & manifest.secret_keys
                     if record.settings.get(k) not in (None, ""))
    kept = f"its {stored} stored item(s) in its private storage"
    if secrets:
        kept += f" and the secret setting(s) {', '.join(secrets)} set for it"
    return kept


def app_data_remover(home: Home) -> Callable[[Conn, str], int] | None:
    """What deletes an install's persistence rows inside the uninstall's own transaction
    (`InstallStore.remove(also=...)`; they live in host.db beside the install, keyed by
    install id, never app id), so no row outlives the install and none is written after it
    (`PersistenceStore`'s put checks the install in its transaction); and its own quota rings
    (install-scoped quotas, its refusal budget: up to a quota's limit of rows each, which no
    later install can charge; kept, install/uninstall churn grew host.db by them every cycle,
    DESIGN rule 13). Returns the persistence rows deleted. None when the home has no host
    store yet (nothing stored)."""
    from host.bridges.persistence import PersistenceStore, remove_all_in
    from host.ledger.quota import drop_rings_in
    from host.ledger.refusals import refusal_budget
    from policies.policy import install_subject

    if not home.has_host_store():
        return None
    PersistenceStore(home.host_store).close()  # its tables, so the DELETE finds them

    def remove(c: Conn, install_id: str) -> int:
        drop_rings_in(c, install_subject(install_id) + ":", [refusal_budget(install_id).key])
        return remove_all_in(c, install_id)
    return remove
