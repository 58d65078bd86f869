"""Write a small app folder for harness tests."""
from pathlib import Path

MANIFEST = '''
id = "probe"
name = "Probe"
version = "0.1.0"
author = "tests"
api = ">=1,<2"
entry = "main:Probe"
events = {events}
{permissions}
[[setting]]
key = "mode"
type = "select"
label = "Mode"
options = ["a", "b"]
default = "a"

[[setting]]
key = "limit"
type = "int"
label = "Limit"
default = 3
'''

# An app whose handlers do what the event asks, so a test can drive any bridge call.
PROBE = '''
from stockade import App, NotFound


class Probe(App):
    def on_livechat_room_started(self, ctx, event):
        return {"settings": ctx.settings, "app_id": ctx.app_id}

    def on_message_sent(self, ctx, event):
        text = event["message"]["text"]
        if text.startswith("echo"):
            return ctx.messages.send(event["message"]["room_id"], text)
        return None

    def on_install(self, ctx, event):
        ctx.store.put("installed", True)
        return "installed"
'''


def write_app(root: Path, *, source: str = PROBE, permissions=("livechat.read",),
              events=("livechat.room_started",), extra_modules=None) -> Path:
    perms = "".join(
        f'\n[[permission]]\nname = "{p}"\nreason = "The tests need {p} here."\n'
        for p in permissions
    )
    ev = "[" + ", ".join(f'"{e}"' for e in events) + "]"
    root.mkdir(parents=True, exist_ok=True)
    (root / "app.toml").write_text(MANIFEST.format(events=ev, permissions=perms))
    (root / "main.py").write_text(source)
    for name, text in (extra_modules or {}).items():
        (root / f"{name}.py").write_text(text)
    return root


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "apps"
EXAMPLE_APPS = ["agent-sync", "proxy-agent", "chatbot-handover", "crm-sync"]


def run_example_tests(app: str) -> int:
    """Import an example app's test module and run each of its (fixture-free) tests; returns
    how many ran. Lets a harness test re-run the examples under a changed harness."""
    import importlib.util
    import inspect

    path = EXAMPLES / app / "tests" / f"test_{app.replace('-', '_')}.py"
    spec = importlib.util.spec_from_file_location(f"rerun_{app.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [f for n, f in vars(module).items() if n.startswith("test_") and callable(f)]
    for test in tests:
        assert not inspect.signature(test).parameters, "example tests take no fixtures"
        test()
    return len(tests)
