"""A child's runtime reads and writes its frames with the msgspec structs alone
(`sandbox.frames.decode_host(..., reference=False)`, `frames.encode_value` for a result): the
zygote that every child is forked from imports neither pydantic nor pydantic_core. With them,
its start (which every host's start waits for) took ~0.44 s against ~0.12 s here, and every
child shared their memory. The pydantic models stay the reference the host's decoding is held to
(`tests/security/test_frames_equal.py`).
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from sandbox import frames

ZYGOTE_IMPORTS = '''
import sys
import sandbox.zygote
from sandbox import runtime
runtime.warm_up()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core")))
'''


def test_the_zygote_and_its_warm_up_import_no_pydantic_nor_its_core() -> None:
    done = subprocess.run([sys.executable, "-I", "-c", ZYGOTE_IMPORTS], capture_output=True,
                          text=True, timeout=60, cwd="/", check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_childs_decoding_refuses_what_msgspec_refuses_without_the_reference() -> None:
    # A NaN only the pydantic reference reads: the host, whose encoder never writes one, is
    # held to the reference; a child refuses it (it never comes).
    body = b'{"t":"event","id":1,"name":"e","payload":{"x":NaN}}'
    assert isinstance(frames.decode_host(body), frames.Event)
    with pytest.raises(frames.FrameInvalid):
        frames.decode_host(body, reference=False)
    assert frames.decode_host(frames.encode(frames.Shutdown()), reference=False) \
        == frames.Shutdown()
