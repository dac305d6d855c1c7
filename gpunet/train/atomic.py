"""Atomic file writes, and the clean-up of the temporaries that interrupted writes leave behind.

``atomic_write(path, data)``: the bytes go to a temporary file in the target's folder, which is
flushed and fsync'ed, renamed over the target with ``os.replace`` and the folder fsync'ed, so the
target holds either its old contents or all of the new ones, whatever happens (SIGKILL included).

A write killed before its rename leaves its temporary behind. Its name says who wrote it::

    .<target name>.gntmp.<host>.<pid>.<random>.tmp

``remove_stale_temporaries(folder)`` deletes only files of exactly that pattern, only those of
this host, and only those whose writing process is gone — never a file of another pattern, and
never a live write of another process or another machine sharing the folder.
"""
from __future__ import annotations

import os
import re
import socket
import tempfile

__all__ = ["atomic_write", "stale_temporaries", "remove_stale_temporaries", "temporary_prefix"]

_MARK = "gntmp"
_PATTERN = re.compile(r"^\.(?P<target>.+)\.gntmp\.(?P<host>[A-Za-z0-9._-]+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def temporary_prefix(path) -> str:
    """The start of the name of a temporary file that this process writes for ``path``."""
    return f".{os.path.basename(os.fspath(path))}.{_MARK}.{_host()}.{os.getpid()}."


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _make_folder(folder: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the folder {folder!r} to save into: {exc.strerror}") from None
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"cannot save into {folder!r}: it is not a folder")


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old contents or all of the new
    ones, whatever happens. A missing folder is created."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    _make_folder(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write into the folder {folder!r}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: a live process of another user
        return True
    return True


def stale_temporaries(folder) -> list[str]:
    """Paths of the temporaries in ``folder`` that an interrupted ``atomic_write`` on this host
    left behind (their writer's pid is no longer running)."""
    folder = os.fspath(folder)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    host, out = _host(), []
    for name in sorted(names):
        m = _PATTERN.match(name)
        if m is None or m["host"] != host or _alive(int(m["pid"])):
            continue
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            out.append(path)
    return out


def remove_stale_temporaries(folder) -> tuple[int, int]:
    """Delete ``stale_temporaries(folder)``; returns (files removed, bytes freed)."""
    count = freed = 0
    for path in stale_temporaries(folder):
        try:
            size = os.path.getsize(path)
            os.unlink(path)
        except FileNotFoundError:  # another process cleaned it first
            continue
        count, freed = count + 1, freed + size
    return count, freed
