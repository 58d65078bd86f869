"""`stockade sandbox exec FILE`: a reviewer's tool to run one snippet in a fresh sandbox."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from host.cli.output import emit_json, err_console, fail
from host.fsio import read_capped
from host.inert import MAX_BLOCK, output, visible

sandbox_app = typer.Typer(help="Run code in a fresh sandbox (no app, no permissions).",
                          no_args_is_help=True)

# A snippet larger than this is refused before a child is started (the child caps again).
MAX_SNIPPET_BYTES = 1 << 20


@sandbox_app.command("exec")
def exec_cmd(
    file: Path = typer.Argument(..., help="Restricted-Python file to run ('-' for stdin)."),
    timeout: float = typer.Option(5.0, "--timeout", min=0.05, max=3600,
                                  help="Wall-clock deadline in seconds."),
    memory: int = typer.Option(128, "--memory", min=16, max=65536,
                               help="Memory budget in MiB."),
    spawn: bool = typer.Option(False, "--spawn", help="Use a fresh interpreter, not the zygote."),
    degraded: bool = typer.Option(False, "--degraded",
                                  help="Run even if a confinement layer is missing."),
    json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout: exit "
                                  "code, the snippet's output and the message."),
) -> None:
    """Run FILE; print() goes to stdout. Exit 0 ok, 1 error/refused, 3 killed for a limit."""
    import sys

    from host.supervise.child import LayerMissing
    from host.supervise.sandbox_exec import run_snippet

    try:
        # A snippet is often someone else's (a vulnerability report's): a FIFO or a link to
        # /dev/zero in its place held the command for good or read until memory ran out.
        data = sys.stdin.buffer.read(MAX_SNIPPET_BYTES + 1) if str(file) == "-" else (
            read_capped(file, MAX_SNIPPET_BYTES))
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}", "pass a readable file")
    if len(data) > MAX_SNIPPET_BYTES:
        fail(f"{file} is larger than {MAX_SNIPPET_BYTES} bytes", "run a smaller snippet")
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError:
        err_console.print("error: the file is not valid UTF-8", highlight=False)
        raise typer.Exit(1) from None

    captured: list[str] = []

    def write(text: str) -> None:
        if json_out:  # nothing but the one document goes to stdout
            captured.append(text)
            return
        sys.stdout.write(output(text))  # the snippet's text is data (DESIGN rule 12)
        sys.stdout.flush()

    try:
        result = run_snippet(source, timeout=timeout, memory_mib=memory, write=write,
                             use_zygote=not spawn, degraded=degraded)
    except LayerMissing as exc:
        fail(str(exc), "run `stockade doctor` to see which layers this machine provides")
    if json_out:
        emit_json({"exit_code": result.exit_code, "output": "".join(captured),
                   "message": result.message})
    elif result.message:
        # The snippet's own error text (DESIGN rule 12): escapes and bidi shown, its lines kept
        # but each after the first indented, so none begins at column 0 where the CLI's own
        # lines ("error: ...") stand.
        first, *rest = visible(result.message, limit=MAX_BLOCK, one_line=False).split("\n")
        err_console.print(Text("\n".join([first, *("  " + ln for ln in rest)])))
    raise typer.Exit(result.exit_code)


def register(root: typer.Typer) -> None:
    root.add_typer(sandbox_app, name="sandbox")
