"""Seams the CLI calls for work that belongs to other parts of the host.

The app CLI runs in its own short-lived process. Counting and deactivating the users an app
created is the server's business, and removing an app's stored data is persistence's; the lead
wires real implementations here (`set_user_ops`). Unwired, the CLI says so and keeps the users.
Lifecycle hooks for the app itself are not here: they are recorded durably in `install_hooks`
(host/installs.py) for the supervisor.
"""
from __future__ import annotations

import importlib
from typing import Protocol

from host.home import Home
from host.installs import InstallRecord


class AppUserOps(Protocol):
    """Server calls about the users an app created (`created_by_app = app_id`)."""

    def count_created_users(self, home: Home, record: InstallRecord) -> int: ...

    def deactivate_created_users(self, home: Home, record: InstallRecord) -> int: ...


_user_ops: AppUserOps | None = None


def set_user_ops(ops: AppUserOps | None) -> None:
    """Wire (or unwire) the server calls used by disclosure/info and `uninstall --users`."""
    global _user_ops
    _user_ops = ops


def count_app_users(home: Home, record: InstallRecord) -> int | None:
    """How many users the app created, or None when no server is wired."""
    return None if _user_ops is None else _user_ops.count_created_users(home, record)


def deactivate_app_users(home: Home, record: InstallRecord) -> int | None:
    """Deactivate the app's users; None when no server is wired (the users are kept)."""
    return None if _user_ops is None else _user_ops.deactivate_created_users(home, record)


def remove_app_data(home: Home, record: InstallRecord) -> str:
    """Delete the app's persistence rows through `host.persistence.remove_all` when present."""
    try:
        mod = importlib.import_module("host.persistence")
    except ImportError:
        return "no persistence module yet: nothing to remove"
    fn = getattr(mod, "remove_all", None)
    if fn is None:
        return "host.persistence has no remove_all: app data not removed"
    removed = fn(home.host_db, record.app_id)
    return f"removed {removed} stored item(s)"
