"""A child's runtime reads and writes its frames with the msgspec structs alone
(`sandbox.frames.decode_host(..., reference=False)`): the zygote that every child is forked from
imports no pydantic. With it, the zygote's start (which every host's start waits for) took about
twice as long (~0.44 s against ~0.2 s here), and every child shared its memory. The pydantic
models stay the reference the host's decoding is held to (`tests/security/test_frames_equal.py`).
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
print(sorted(m for m in sys.modules if m == "pydantic" or m.startswith("pydantic.")))
'''


def test_the_zygote_and_its_warm_up_import_no_pydantic() -> None:
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
