"""Server and persistence work the app CLI needs at uninstall and in disclosures.

The CLI runs in its own short-lived process: it opens the embedded server (HOME/server.db) and
the persistence rows (HOME/host.db) directly. A running host notices the uninstall through the
install store and stops the app's child on its own.
"""
from __future__ import annotations

from host.apps.installs import InstallRecord
from host.clock import SystemClock
from host.home import Home
from host.server.embedded import EmbeddedServer


def _server(home: Home) -> EmbeddedServer:
    return EmbeddedServer(home.server_db, SystemClock())


def count_app_users(home: Home, record: InstallRecord) -> int | None:
    """How many users the app created (None when this home has no server yet)."""
    if not home.server_db.exists():
        return None
    return int(_server(home).count_users_created_by(record.app_id))


def deactivate_app_users(home: Home, record: InstallRecord) -> int | None:
    """Deactivate every user the app created, and its own app user. None without a server."""
    if not home.server_db.exists():
        return None
    server = _server(home)
    count = int(server.deactivate_users_created_by(record.app_id))
    server.remove_app_user(record.app_id)
    return count


def app_agents(home: Home, record: InstallRecord) -> int | None:
    """How many livechat agents the app brought (its users and its app user). None without a
    server."""
    if not home.server_db.exists():
        return None
    return len(_server(home).agents_of_app(record.app_id))


def remove_app_agents(home: Home, record: InstallRecord) -> int | None:
    """Stop the app's agents being routed anything (uninstall --agents remove)."""
    if not home.server_db.exists():
        return None
    return int(_server(home).remove_agents_of_app(record.app_id))


def count_app_data(home: Home, record: InstallRecord) -> int:
    """How many persistence rows the install holds (what `remove_app_data` would delete)."""
    from host.bridges.persistence import PersistenceStore

    if not home.host_db.exists():
        return 0
    store = PersistenceStore(home.host_db)
    try:
        return len(store.keys(record.install_id))
    finally:
        store.close()


def remove_app_data(home: Home, record: InstallRecord) -> str:
    """Delete the install's persistence rows (they are keyed by install id, never app id)."""
    from host.bridges.persistence import remove_all

    if not home.host_db.exists():
        return "no stored data"
    removed = remove_all(home.host_db, record.install_id)
    return f"removed {removed} stored item(s)"
