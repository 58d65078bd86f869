"""A secret setting's value is masked in the app's log however the child splits its output into
Log frames (`host/supervise/logmask.py`).

The host masked each Log frame alone, and the child decides where frames end (a print flush, a
bridge call; anywhere, for code that escaped the runtime): a value split across two frames of
one event was written in clear, half on one log line and half on the next, and `app logs`,
which masks the file's text, never saw it whole. A frame the child cut at its print cap, and
output the host's own cap cut, wrote a value's first characters in clear too.

The child here is `sechelp.FAKE_CHILD` (unrestricted Python speaking the protocol); the host
side is the real `Child`, `AppRunner`, `LogBudget` and log writer.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sechelp import start_fake_child

from host.apps.installs import SECRET_MASK, mask_secrets
from host.hostevents import HostEvents
from host.supervise.affinity import Affinity
from host.supervise.child import MAX_STDERR_KEPT, Child
from host.supervise.logcap import MAX_LOG_CHARS_PER_EVENT
from host.supervise.logmask import MaskedStream
from host.supervise.supervisor import AppRunner

SECRET = "sk-live-7Hq2Zp9Xw4Rb"  # a planted value the log must never show


class _Host:
    """The `RunnerHost` an `AppRunner` needs: a fake child, the real log writer into `logs`."""

    def __init__(self, steps: list[Any], logs: Path) -> None:
        self.steps = steps
        self.home = SimpleNamespace(logs_dir=logs)
        self.affinity = Affinity(enabled=False)
        self.children: list[Child] = []

    def first_job_over(self) -> None:
        pass  # no pre-fork pool here

    def start_child(self, runner: AppRunner) -> Child:
        child = start_fake_child(self.steps)
        self.children.append(child)
        child.handshake("tok", lambda _t: None, degraded=False)
        runner.session = SimpleNamespace(session_id=child.session_id,  # type: ignore[assignment]
                                         revoked="")
        return child

    def audit_supervisor(self, runner: AppRunner, event: str, detail: str) -> None:
        pass

    def write_app_log(self, install_id: str, text: str, truncated: bool) -> None:
        HostEvents.write_app_log(self, install_id, text, truncated)  # type: ignore[arg-type]

    def note_app_log(self, install_id: str, text: str) -> None:
        HostEvents.note_app_log(self, install_id, text)  # type: ignore[arg-type]

    def event_allowed(self, install: Any, event: str, decided_under: object,
                      payload: Any) -> bool:
        return True


@pytest.fixture
def run_events(tmp_path: Path) -> Iterator[Any]:
    made: list[tuple[_Host, AppRunner]] = []

    def run(events: list[list[Any]]) -> str:
        """Each event's steps between ["event"] and ["done"]; the log file's text after."""
        steps: list[Any] = [["hello"]]
        for ev in events:
            steps += [["event"], *ev, ["done"]]
        host = _Host(steps, tmp_path)
        install = SimpleNamespace(install_id="inst-1", app_id="leaky", crash_stop=None,
                                  settings={"api_key": SECRET}, secret_keys=frozenset({"api_key"}))
        runner = AppRunner(host, install)  # type: ignore[arg-type]
        made.append((host, runner))
        for _ in events:
            runner.submit("x.y", {}, 30.0).result(30)
        return (tmp_path / "inst-1.log").read_text()

    yield run
    for host, runner in made:
        runner.stop("test over")
        for child in host.children:
            child.kill("test over")
            child.close()


def _log(text: str, truncated: bool = False) -> list[Any]:
    return ["send", {"t": "log", "text": text, "truncated": truncated}]


def _app_text(text: str) -> str:
    """The app's lines of a log file's text, joined without their line breaks."""
    return "".join(ln.split(" | ", 1)[1] for ln in text.splitlines() if " | " in ln)


def _clear(text: str) -> list[str]:
    """Every run of at least 4 of the secret's characters, in order, the log shows in clear
    (across its line breaks and stamps too: what a reader of the file puts together)."""
    app_text = _app_text(text)
    return [SECRET[i:j] for i in range(len(SECRET)) for j in range(i + 4, len(SECRET) + 1)
            if SECRET[i:j] in app_text and SECRET[i:j] not in SECRET_MASK]


def test_a_value_split_across_two_frames_at_any_character_is_masked(run_events: Any) -> None:
    events = [[_log("calling the CRM with key " + SECRET[:k]), _log(SECRET[k:] + " now\n")]
              for k in range(1, len(SECRET))]
    text = run_events(events)
    assert _clear(text) == [], text
    assert text.count(SECRET_MASK) == len(SECRET) - 1, text  # one mask per event


def test_a_near_miss_is_written_and_a_value_over_three_frames_is_masked(
        run_events: Any) -> None:
    # A frame ending in a start of the value that the next frame does not finish is written as
    # it was printed; the value later in the same event, over three frames, is masked whole.
    near = SECRET[:6]
    text = run_events([[_log("a " + near), _log("-not-it\n"), _log(SECRET[:3]),
                        _log(SECRET[3:9]), _log(SECRET[9:] + "\n")]])
    assert _app_text(text) == f"a {near}-not-it{SECRET_MASK}", text


def test_a_value_cut_by_the_childs_print_cap_is_masked(run_events: Any) -> None:
    # The runtime's print cap cuts the text where it is full (`CappedPrint.write`): the frame
    # ends with the value's first characters, marked truncated.
    text = run_events([[_log("the key is " + SECRET[:9], truncated=True)]])
    assert _clear(text) == [], text
    assert "output truncated" in text


def test_a_value_cut_by_the_hosts_log_cap_is_masked(run_events: Any) -> None:
    # The host keeps at most MAX_LOG_CHARS_PER_EVENT characters of one event: output sized to
    # end 9 characters into the value wrote those 9 in clear.
    fill = MAX_LOG_CHARS_PER_EVENT - 9
    frames = [["logs", fill // 65_536, "x", 65_536], ["logs", 1, "x", fill % 65_536]]
    text = run_events([[*frames, _log(SECRET + "\n")]])
    assert "passed the host's cap" in text
    assert _clear(text) == [], text[-400:]


def test_each_way_into_the_log_masks_on_its_own(tmp_path: Path) -> None:
    """Every way the app's words reach its log masks them, and each is the only mask on its way
    (`applog.AppLog`; the writer, `AppRunner._log`, masks nothing): an event's stream, a frame
    on its own, whole or cut, and a host note quoting the app. A way left unmasked shows the
    value here (the writer masked everything a second time: that hid a way that lost its own
    mask, and a frame on its own cut inside the value wrote its first 9 characters in clear)."""
    host = _Host([["hello"]], tmp_path)
    install = SimpleNamespace(install_id="inst-1", app_id="leaky", crash_stop=None,
                              settings={"api_key": SECRET}, secret_keys=frozenset({"api_key"}))
    runner = AppRunner(host, install)  # type: ignore[arg-type]
    try:
        stream = runner.log.stream()  # what `LogBudget` opens for each event and load
        stream("streamed " + SECRET[:7], False)
        stream(SECRET[7:] + "\n", False)
        stream.end(False)
        runner.log("alone " + SECRET + "\n", False)
        runner.log("alone and cut " + SECRET[:9], True)
        runner.log.note("a handler said " + SECRET)
        text = (tmp_path / "inst-1.log").read_text()
    finally:
        runner.stop("test over")
    assert _clear(text) == [], text
    runs = [SECRET[i:i + 4] for i in range(len(SECRET) - 3)]
    assert [r for r in runs if r in text] == [], text  # the note's line too
    assert _app_text(text) == (f"streamed {SECRET_MASK}alone {SECRET_MASK}"
                               f"alone and cut {SECRET_MASK}"), text
    assert f"stockade: a handler said {SECRET_MASK}\n" in text, text


def test_an_event_without_secrets_is_written_as_it_came(tmp_path: Path) -> None:
    got: list[tuple[str, bool]] = []
    stream = MaskedStream(lambda t, tr: got.append((t, tr)), lambda _n: None, ())
    stream("a", False)
    stream("b", True)
    stream.end(True)
    assert got == [("a", False), ("b", True)]


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(st.text(alphabet="abk-", max_size=12), min_size=1, max_size=6),
       value=st.text(alphabet="abk-", min_size=1, max_size=6))
def test_the_stream_masks_as_the_whole_text_would(parts: list[str], value: str) -> None:
    # Wherever the frames split the text, what is written is the whole text masked; nothing
    # is held past the event's end.
    got: list[str] = []
    stream = MaskedStream(lambda t, _tr: got.append(t), lambda _n: None, (value,))
    for part in parts:
        stream(part, False)
    stream.end(False)
    assert "".join(got) == mask_secrets("".join(parts), [value])


# A secret of several-byte characters: the stderr cap counts bytes, so it may cut one in two.
WIDE_SECRET = "p\u00e4ssw\u00f6rd-\u03a9\u03bc\u03ad\u03b3\u03b1-7Hq2"


@pytest.mark.parametrize(("secret", "cut_bytes"), [(SECRET, 9), (WIDE_SECRET, 12)],
                         ids=["ascii", "cut_inside_a_character"])
def test_a_value_cut_by_the_stderr_cap_is_masked_in_the_crash_text(
        tmp_path: Path, secret: str, cut_bytes: int) -> None:
    # The host keeps the first MAX_STDERR_KEPT bytes of a dead child's stderr (`last_crash`, the
    # `child_died` record's detail): crash text sized to end 9 characters into the value wrote
    # those 9 into the audit chain in clear. Cut inside a character (12 bytes into the wide
    # value: its "\u03a9" halved), the decoder's U+FFFD hid the start the mask looks for.
    fill = "x" * (MAX_STDERR_KEPT - cut_bytes - len("key "))
    host = _Host([["hello"], ["event"], ["stderr", f"{fill}key {secret}\n"], ["exit", 1]],
                 tmp_path)
    install = SimpleNamespace(install_id="inst-1", app_id="leaky", crash_stop=None,
                              settings={"api_key": secret}, secret_keys=frozenset({"api_key"}))
    runner = AppRunner(host, install)  # type: ignore[arg-type]
    try:
        with pytest.raises(Exception):  # the child died, as the runner reports it
            runner.submit("x.y", {}, 30.0).result(30)
        assert runner.last_crash.endswith("key " + SECRET_MASK), runner.last_crash[-40:]
        assert secret[:4] not in runner.last_crash
    finally:
        runner.stop("test over")
        for child in host.children:
            child.kill("test over")
            child.close()
