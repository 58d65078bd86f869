"""The audit anchor file and its key: a signed pin of the chain's head, kept outside the store.

`HOME/audit.anchor` holds one line `stockade-audit-anchor/1 <seq> <hash> <mac>`, where
`mac = HMAC-SHA256(key, "stockade-audit-anchor/1 <seq> <hash>")` and the key is 32 random bytes
in `HOME/keys/audit-anchor.key` (0600, created with the log). The file is rewritten atomically
(temp file + rename). When it is written and what it detects: `host/ledger/audit.py`.
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from host.fsio import read_capped
from host.ledger.records import AuditError

ANCHOR_MAGIC = "stockade-audit-anchor/1"
# Most bytes read of the anchor or its key (a good anchor is ~175 bytes, a key 32). Guards every
# process that reads them against a huge file or a device (a symlink to /dev/zero) put in their
# place by someone who can write the home: past it the file is damaged, never read whole.
MAX_FILE_BYTES = 4096


def read_small(path: Path) -> bytes:
    """The bytes of `path`, which must be a regular file of at most MAX_FILE_BYTES. Opened
    without blocking, so a FIFO put in its place never stalls the reader (a host's anchoring
    inside a bridge call, `audit verify`, `serve`'s start). Raises FileNotFoundError when it
    is missing, OSError when it is no regular file, is too large or cannot be read."""
    data = read_capped(path, MAX_FILE_BYTES)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_FILE_BYTES} bytes", str(path))
    return data


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str


def load_or_create_key(path: Path, create: bool) -> bytes | None:
    """The anchor's key, made (32 random bytes, 0600) when missing and `create`; else None."""
    try:
        data = read_small(path)
    except FileNotFoundError:
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            pass
        else:
            try:
                os.write(fd, secrets.token_bytes(32))
                os.fsync(fd)
            finally:
                os.close(fd)
        made = load_or_create_key(path, create=False)
        if made is None:  # O_EXCL met something that is no file: a dangling symlink
            raise AuditError(f"{path}: audit anchor key cannot be made (a dangling symlink?)"
                             ) from None
        return made
    except OSError as e:
        raise AuditError(f"{path}: audit anchor key unreadable: {e.strerror or e}") from e
    if len(data) < 32:
        raise AuditError(f"{path}: audit anchor key is damaged")
    return data


def anchor_mac(key: bytes, seq: int, h: str) -> str:
    return hmac.new(key, f"{ANCHOR_MAGIC} {seq} {h}".encode(), hashlib.sha256).hexdigest()


def read_anchor(path: Path, key: bytes | None, key_path: Path) -> Anchor | None:
    """The anchor, or None if there is none. Raises AuditError if it is forged or damaged."""
    try:
        text = read_small(path).decode("ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise AuditError(f"anchor unreadable: {e}") from e
    parts = text.strip().split(" ")
    if len(parts) != 4 or parts[0] != ANCHOR_MAGIC or not parts[1].isdigit():
        raise AuditError("anchor damaged (bad format)")
    seq, h, mac = int(parts[1]), parts[2], parts[3]
    if key is None:
        raise AuditError(f"anchor present but its key {key_path} is missing")
    if not hmac.compare_digest(mac, anchor_mac(key, seq, h)):
        raise AuditError("anchor signature does not match (forged or wrong key)")
    return Anchor(seq, h)


def write_anchor_file(path: Path, key: bytes, seq: int, h: str) -> Anchor:
    """Pin (seq, h) in `path`: a temp file renamed over it, so a reader never sees half."""
    line = f"{ANCHOR_MAGIC} {seq} {h} {anchor_mac(key, seq, h)}\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            data = line.encode()
            if os.write(fd, data) != len(data):  # a nearly full disk: never a torn anchor
                raise OSError(errno.ENOSPC, "short write of the audit anchor")
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no stray temp files on the full disk
        raise
    return Anchor(seq, h)


__all__ = ["ANCHOR_MAGIC", "Anchor", "anchor_mac", "load_or_create_key", "read_anchor",
           "write_anchor_file"]
