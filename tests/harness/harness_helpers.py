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
            return ctx.messages.send(event["room"]["id"], text)
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
