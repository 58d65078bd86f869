"""`stockade policy add|reload|list`: the home's policy folder, changed only through a check.

A serving host polls its policy folder (`host.gate.policywatch`) and replaces the active policy
only with a set that loads. `policy add` checks the new file together with the files already in
the home before copying it in (atomically), so a bad file never even reaches the folder;
`policy reload` checks the folder as it is now and says which revision a serving host will use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from host.apps.published import plain_policy_name, unpublishable
from host.cli.output import EXIT_NEGATIVE, EXIT_USAGE, emit_json, err_console, fail
from host.cli.policy_cmd import _print_findings
from host.cli.policy_cmd import app as policy_app
from host.fsio import atomic_write, read_capped
from host.home import Home, toml_files
from host.inert import line
from host.ledger.operator import audited
from host.supervise.status import PUBLISH_INTERVAL_S
from policies.findings import FAILING, Finding, sort_findings
from policies.loader import CASES_SUFFIX, MAX_FILE_BYTES, load

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output on stdout only.")]


def _home_files(home: Home) -> list[Path]:
    if not home.policies_dir.is_dir():
        return []
    return sorted(p for p in toml_files(home.policies_dir)
                  if not p.name.endswith(CASES_SUFFIX))


@policy_app.command("add")
def add_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A policy file (*.toml) to add to the home.")],
    name: Annotated[str | None, typer.Option(
        "--name", help="File name in the home (default: the file's own name).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Check only; change nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Check a policy file with the home's others, then copy it in (a serving host picks it up).

    Replaces a file of the same name. Nothing is copied when the set would not load.
    """
    home: Home = ctx.obj
    target_name = name or file.name
    # A plain name only (the one a published bundle may carry): the name is shown to operators,
    # written into the audit chain and published to every host sharing the store, which refuse
    # a bundle holding any other (an author's file named with an escape sequence or a line
    # break reached the terminal raw and the folder as it was).
    if not plain_policy_name(target_name) or target_name.endswith(CASES_SUFFIX):
        fail(f"{target_name!r} is not a policy file name", "use NAME.toml: ASCII letters, "
             "digits, '.', '_' and '-', starting with a letter or digit (not *.cases.toml); "
             "--name gives the file another name")
    try:
        # The author's file, handed in beside their app: a FIFO there held `policy add` for
        # good, and a link to /dev/zero (size 0 to `stat`) was read until memory ran out.
        raw = read_capped(file, MAX_FILE_BYTES)
        if len(raw) > MAX_FILE_BYTES:
            fail(f"{file} is larger than {MAX_FILE_BYTES} bytes", "split it into several files")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}",
             "give a policy file (*.toml)")
    target = home.policies_dir / target_name
    if target.exists() and not target.is_symlink() and not target.is_file():
        fail(f"{target} is not a regular file; nothing changed", "remove it or use --name")
    if dry_run:
        revision, findings = _checked(home, file, text, target, json_out)
        replaces = target.exists()
    else:
        home.ensure()
        # The check and the copy under the folder's lock: another `policy add` landing between
        # them would otherwise be copied in beside a file it was never checked with.
        with home.policy_lock():
            _publishable_or_fail(home)
            revision, findings = _checked(home, file, text, target, json_out)
            replaces = target.exists()
            # Rule 14, audit before act: no record, no file (`audited` raises AuditError first).
            with audited(home.host_store, "policy_add",
                         detail=f"{'replace' if replaces else 'add'} {target.name}: the home's "
                         f"policy becomes revision {revision}"):
                atomic_write(target, text.encode("utf-8"), 0o644)
                _publish(home, revision)
    verb = "would add" if dry_run else "added"
    if replaces:
        verb = "would replace" if dry_run else "replaced"
    err_console.print(line(f"{verb} {target}; policy revision {revision}"))
    if not dry_run:
        err_console.print(f"a serving host picks it up within {2 * PUBLISH_INTERVAL_S:.0f} s",
                          highlight=False)
    if json_out:
        emit_json({"added": not dry_run, "dry_run": dry_run, "replaced": replaces,
                   "file": str(target), "revision": revision,
                   "findings": [f.to_json() for f in findings]})


def _checked(home: Home, file: Path, text: str, target: Path,
             json_out: bool) -> tuple[str, list[Finding]]:
    """The revision and findings of the home's policy with `text` as `target` (the other files
    as they are now), or a refusal naming every failing finding. Findings name the file the
    operator gave. The folder is listed and its other files read by the loader itself, as a
    serving host loads it (`load_policy(folder)`): a file the host would refuse (a symlink, not
    UTF-8, past the file cap, a folder named *.toml) refuses the add too."""
    folder = home.policies_dir
    res = load([folder] if folder.is_dir() else [target], overlay={target: (text, str(file))})
    findings = sort_findings(res.findings)
    if res.policy is None:
        _print_findings([f for f in findings if f.severity in FAILING])
        if json_out:
            emit_json({"added": False, "file": str(target),
                       "findings": [f.to_json() for f in findings]})
        fail(f"{file} refused: the home's policy would not load with it; nothing changed",
             f"`stockade policy check {home.policies_dir} {file}` lists every finding",
             EXIT_NEGATIVE)
    return res.policy.revision, findings


@policy_app.command("reload")
def reload_cmd(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Check the home's policy folder as it is now: the revision a serving host will decide with.

    A serving host polls the folder itself; this says whether the change loads. Exit 1 when it
    does not (the host keeps its previous revision).
    """
    home: Home = ctx.obj
    files = _home_files(home)
    _publishable_or_fail(home)
    if not files:
        fail(f"no policy files in {home.policies_dir}",
             "`stockade init` writes the shipped default", EXIT_NEGATIVE)
    res = load([home.policies_dir])
    findings = sort_findings(res.findings)
    if json_out:
        emit_json({"ok": res.policy is not None,
                   "revision": res.policy.revision if res.policy else None,
                   "files": [p.name for p in files],
                   "findings": [f.to_json() for f in findings]})
    if res.policy is None:
        if not json_out:
            _print_findings([f for f in findings if f.severity in FAILING])
        fail(f"the policy in {home.policies_dir} does not load: a serving host keeps "
             "deciding with its previous revision", "fix or remove the file named above",
             EXIT_NEGATIVE)
    err_console.print(f"{len(files)} file(s) load as revision {res.policy.revision}; a serving "
                      f"host uses it within {2 * PUBLISH_INTERVAL_S:.0f} s (once the folder held "
                      "still for a poll)", highlight=False)
    _publish(home, res.policy.revision)


def _publishable_or_fail(home: Home) -> None:
    """On a shared store, refuse before anything is written when the folder holds a file no
    other host would adopt (its name): they would keep the old policy, this home the new."""
    if home.store_url is None or not home.policies_dir.is_dir():
        return
    bad = unpublishable(home.policies_dir)
    if bad:
        fail(f"{', '.join(repr(b) for b in bad)} in {home.policies_dir} cannot be published: "
             "every host sharing the store refuses a policy file whose name is not a plain "
             "NAME.toml; nothing changed", "rename it (ASCII letters, digits, '.', '_', '-')",
             EXIT_NEGATIVE)


def _publish(home: Home, revision: str) -> None:
    """On a shared store, every host adopts the folder too (signed: `host.apps.published`)."""
    if home.store_url is None:
        return
    from host.apps.published import ADOPTED_FILE, publish
    from host.ledger.operator import open_keyring, operator_actor

    with audited(home.host_store, "policy_publish", detail=f"revision {revision}"):
        version = publish(home.host_store, open_keyring(home), home.policies_dir, revision,
                          origin=operator_actor(), adopted_file=home.root / ADOPTED_FILE)
    err_console.print(f"published to every host sharing the store as bundle {version}",
                      highlight=False)


def register(root: typer.Typer) -> None:
    """The commands hang on the `policy` group (`host.cli.policy_cmd`)."""


__all__ = ["EXIT_USAGE", "register"]
