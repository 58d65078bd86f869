"""The CLI imports a command's modules when that command runs (`host/cli/lazy.py`): its table
names every command module, each name's modules make exactly that command, and a light command
leaves the heavy parts of the product unimported."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import typer
import typer.main

from host.cli import lazy

CLI = Path(lazy.__file__).parent


def _registering_modules() -> set[str]:
    """Every host/cli module that defines `register(root)` (a command group's module)."""
    found = set()
    for path in CLI.glob("*.py"):
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.FunctionDef) and n.name == "register" for n in tree.body):
            found.add(f"host.cli.{path.stem}")
    return found


def _fresh_process(probe: str) -> str:
    """What `probe` prints, run in a new interpreter (nothing imported yet)."""
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_table_names_every_command_module() -> None:
    # A module left out would be a command that silently no longer exists.
    assert {m for ms in lazy.COMMANDS.values() for m in ms} == _registering_modules()


def test_each_names_modules_make_exactly_that_command() -> None:
    for name, modules in lazy.COMMANDS.items():
        holder = typer.Typer()
        for module in modules:
            __import__(module, fromlist=["register"]).register(holder)
        assert set(typer.main.get_group(holder).commands) == {name}, modules
        assert lazy.command(name) is not None


def test_every_command_is_listed_and_an_unknown_one_is_not() -> None:
    from host.cli.main import root

    group = typer.main.get_command(root)
    ctx = typer.Context(group)
    assert group.list_commands(ctx) == list(lazy.COMMANDS)
    assert group.get_command(ctx, "no-such-command") is None


def test_light_commands_import_none_of_the_heavy_parts(tmp_path: Path) -> None:
    """`stockade init` and `app list` took ~1 s before any of their work: every command's
    modules were imported, and `app list` imported the Rocket.Chat client (httpx) to ask an
    embedded server how many users each app has."""
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from host.cli.main import root\n"
        f"for argv in (['init'], ['app', 'list']):\n"
        f"    r = CliRunner().invoke(root, ['--home', {str(tmp_path / 'h')!r}, *argv])\n"
        "    assert r.exit_code == 0, r.output\n"
        "heavy = ('host.gate.gate', 'httpx', 'starlette', 'uvicorn', 'host.cli.serve_cmd', "
        "'host.cli.bench_cmd', 'host.server.remote.client')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n")
    out = _fresh_process(probe)
    assert out.strip() == "[]", out


def test_help_lists_the_commands_in_the_order_the_eager_root_did() -> None:
    """`stockade --help` lists the commands as the root that imported every module listed them
    (typer: the plain commands, then the groups, each in the order registered). Before, the
    lazy root listed the table's order: sandbox, policy, audit, app and keys moved up among
    the plain commands."""
    from host.cli.main import root

    eager = typer.Typer()
    for modules in lazy.COMMANDS.values():
        for module in modules:
            __import__(module, fromlist=["register"]).register(eager)
    was = typer.main.get_group(eager)
    group = typer.main.get_command(root)
    assert isinstance(group, typer.core.TyperGroup)
    assert group.list_commands(typer.Context(group)) == was.list_commands(typer.Context(was))


def test_a_typo_is_answered_with_the_command_it_resembles() -> None:
    """Typer suggests from the names its group holds; the lazy root holds none until one is
    built, so `LazyGroup.resolve_command` stands every name in while it resolves."""
    from typer.testing import CliRunner

    from host.cli.main import root

    r = CliRunner().invoke(root, ["aud"])
    assert r.exit_code == 2 and "Did you mean 'audit'?" in r.output, r.output


def test_each_listed_help_line_is_the_commands_own() -> None:
    """`stockade --help` lists each command with its `LISTED` line, not the command's own help
    (listing builds no command): a line out of date would misdescribe the command."""
    import inspect

    assert list(lazy.LISTED) == list(lazy.COMMANDS)
    for name in lazy.COMMANDS:
        built = lazy.command(name)
        assert built is not None
        own = inspect.cleandoc(built.short_help or built.help or "").split("\n\n")[0]
        assert lazy.LISTED[name] == own, name
        assert not built.hidden and not built.deprecated, name
        assert not getattr(built, "rich_help_panel", None), name  # one panel, as listed


def test_root_help_imports_no_command_and_reads_as_the_built_commands_would() -> None:
    """`stockade --help` (and `stockade` alone) took ~0.9 s importing every command's modules
    for one line each; it imports none now, and prints what it printed when it built them."""
    modules = sorted({m for ms in lazy.COMMANDS.values() for m in ms})
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from host.cli import lazy\n"
        "from host.cli.main import root\n"
        "listed = CliRunner().invoke(root, ['--help'])\n"
        "alone = CliRunner().invoke(root, [])\n"
        "assert listed.exit_code == 0 and alone.output.strip() == listed.output.strip()\n"
        f"print(sorted(m for m in {modules!r} if m in sys.modules))\n"
        "for name in lazy.COMMANDS:\n"
        "    lazy.command(name)\n"
        "built = CliRunner().invoke(root, ['--help'])\n"
        "print(listed.output == built.output)\n"
        "print(listed.output)\n")
    imported, same, *shown = _fresh_process(probe).splitlines()
    assert imported == "[]", imported
    assert same == "True", "\n".join(shown)
    assert "can-i" in "\n".join(shown) and "rocketchat" in "\n".join(shown)
