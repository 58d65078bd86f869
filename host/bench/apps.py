"""The bench's apps and policy, written into a temporary home and installed like any package.

The apps use only the app-facing API (`from stockade import App`, the `time` facade). Each
measuring app times its own bridge calls with `time.monotonic()` around the call inside its
handler and returns the list of durations as the handler's result: that is the cost of a bridge
call as the app sees it (child-side serialization, the pipe both ways, the whole gate, the
server, and the reply's validation), and nothing else (no event delivery, no thread hand-off).
The handler is triggered by an event the app declares (`livechat.room_closed`); its payload
only carries the loop parameters.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host.apps.installs import InstallRecord
from host.apps.operations import install_package
from host.apps.packages import read_package
from host.apps.publisher import TrustStore, check_signature
from host.home import Home
from policies.loader import load_policy

# The event that triggers the measuring loops (declared, needs livechat.read).
LOOP_EVENT = "livechat.room_closed"
# The post event fanned out to many apps.
FANOUT_EVENT = "livechat.room_started"

READERS = tuple(f"bench-reader-{i}" for i in range(4))
CREATOR = "bench-creator"
COLD = "bench-cold"
FANOUT_PREFIX = "bench-fan-"
# Usernames the creator and the REST client make (the policy's username_pattern checks them).
USERNAME_PATTERN = "^bench-[a-z0-9-]{1,40}$"

_READER_SRC = '''\
from stockade import App
import time


class Bench(App):
    def on_livechat_room_closed(self, ctx, event):
        clock = time.monotonic
        get = ctx.users.get
        uid = event["uid"]
        out = []
        add = out.append
        for i in range(event["n"]):
            t0 = clock()
            get(uid)
            add(clock() - t0)
        return out
'''

_CREATOR_SRC = '''\
from stockade import App
import time


class Bench(App):
    def on_livechat_room_closed(self, ctx, event):
        clock = time.monotonic
        create = ctx.users.create
        prefix = event["prefix"]
        out = []
        add = out.append
        for i in range(event["start"], event["start"] + event["n"]):
            username = prefix + str(i)
            fields = {"externalId": username}
            t0 = clock()
            create(username, "Bench User", type="bot", roles=["bot"], custom_fields=fields)
            add(clock() - t0)
        return out
'''

_TRIVIAL_SRC = '''\
from stockade import App


class Bench(App):
    def on_livechat_room_started(self, ctx, event):
        return None

    def on_livechat_room_closed(self, ctx, event):
        return None
'''


def _manifest(app_id: str, permissions: tuple[str, ...], events: tuple[str, ...]) -> str:
    perms = "".join(
        f'\n[[permission]]\nname = "{p}"\nreason = "Benchmark: measures the cost of {p}."\n'
        for p in permissions)
    evs = ", ".join(f'"{e}"' for e in events)
    return (f'id = "{app_id}"\nname = "Bench {app_id}"\nversion = "0.1.0"\n'
            f'author = "stockade bench"\ndescription = "Benchmark app."\napi = ">=1,<2"\n'
            f'entry = "main:Bench"\nevents = [{evs}]\n{perms}')


def fanout_ids(count: int) -> tuple[str, ...]:
    return tuple(f"{FANOUT_PREFIX}{i:03d}" for i in range(count))


def policy_text(fanout: tuple[str, ...]) -> str:
    """Rules the bench apps need; a users.create rule with argument constraints, an exact quota
    far above what a run uses (so it never refuses), and a seat ceiling likewise."""
    def ids(xs: tuple[str, ...]) -> str:
        return ", ".join(f'"{x}"' for x in xs)

    return f'''schema = 1
name = "bench"
description = "stockade bench: the benchmark apps only."

[workspace]
max_active_app_users = 1000000

[[rule]]
id = "bench-read"
effect = "permit"
apps = [{ids((*READERS, CREATOR, COLD))}]
actions = ["users.read", "livechat.read"]

[[rule]]
id = "bench-create"
effect = "permit"
apps = ["{CREATOR}"]
actions = ["users.create"]

[rule.when]
user_types = ["bot", "user"]
roles = ["bot", "livechat-agent"]
custom_field_keys = ["externalId"]
username_pattern = "{USERNAME_PATTERN}"

[[rule]]
id = "bench-fanout"
effect = "permit"
apps = [{ids(fanout)}]
actions = ["livechat.read"]

[[quota]]
id = "bench-create-quota"
apps = ["{CREATOR}"]
action = "users.create"
limit = 100000
window = "1h"
scope = "install"
'''


@dataclass(frozen=True)
class BenchInstalls:
    readers: tuple[InstallRecord, ...]
    creator: InstallRecord
    cold: InstallRecord
    fanout: tuple[InstallRecord, ...]


def _write_app(root: Path, app_id: str, source: str, permissions: tuple[str, ...],
               events: tuple[str, ...]) -> Path:
    folder = root / app_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.toml").write_text(_manifest(app_id, permissions, events))
    (folder / "main.py").write_text(source)
    return folder


def _installer(home: Home, src_root: Path) -> Callable[
        [str, str, tuple[str, ...], tuple[str, ...]], InstallRecord]:
    revision = load_policy(home.policies_dir).revision
    trust = TrustStore(home.trust_dir)

    def install(app_id: str, source: str, permissions: tuple[str, ...],
                events: tuple[str, ...]) -> InstallRecord:
        pkg = read_package(_write_app(src_root, app_id, source, permissions, events))
        return install_package(home, pkg, check_signature(pkg, trust), frozenset(permissions),
                               policy_revision=revision)
    return install


def install_app(home: Home, src_root: Path, app_id: str, source: str,
                permissions: tuple[str, ...], events: tuple[str, ...]) -> InstallRecord:
    """Write one bench app's folder and install it with its grants (the home's policy must
    already permit it)."""
    return _installer(home, src_root)(app_id, source, permissions, events)


def install_fanout(home: Home, src_root: Path, count: int) -> tuple[InstallRecord, ...]:
    """Install `count` trivial handlers of FANOUT_EVENT (the policy must name them already)."""
    install = _installer(home, src_root)
    return tuple(install(a, _TRIVIAL_SRC, ("livechat.read",), (FANOUT_EVENT,))
                 for a in fanout_ids(count))


def install_bench_apps(home: Home, src_root: Path, fanout_count: int, *,
                       policy_fanout: int | None = None) -> BenchInstalls:
    """Write the policy and the app folders, then install each app with its grants.
    `policy_fanout`: how many fan-out apps the policy permits (default: `fanout_count`), so
    `install_fanout` can add them later."""
    # The bench's temporary home runs on its own policy alone: the shipped baseline's call-rate
    # quota would cut the measured loops short.
    home.default_policy.unlink(missing_ok=True)
    (home.policies_dir / "bench.toml").write_text(policy_text(fanout_ids(
        fanout_count if policy_fanout is None else policy_fanout)))
    install = _installer(home, src_root)
    loop = (LOOP_EVENT,)
    readers = tuple(install(a, _READER_SRC, ("users.read", "livechat.read"), loop)
                    for a in READERS)
    creator = install(CREATOR, _CREATOR_SRC, ("users.read", "users.create", "livechat.read"),
                      loop)
    cold = install(COLD, _TRIVIAL_SRC, ("livechat.read",), loop)
    return BenchInstalls(readers, creator, cold, install_fanout(home, src_root, fanout_count))
