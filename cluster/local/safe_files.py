"""Files and directories a root process may trust: no symlinks, the right owner, no foreign writers.

The local cluster runs as root and keeps its state in a system directory
(``/run/phasic-slurm``). Before it reads, writes or deletes anything there it
checks, with ``lstat`` / ``O_NOFOLLOW`` / ``fstat`` (never by following a path
twice), that the entry is not a symbolic link, is owned by the expected user and
cannot be written by group or others. Anything else is refused with a
:class:`ClusterError` that names the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import shutil
import stat
from collections.abc import Iterator


class ClusterError(RuntimeError):
    """The local cluster could not be brought up, inspected or torn down."""


_FOREIGN_WRITE = stat.S_IWGRP | stat.S_IWOTH


def _check(path: pathlib.Path, st: os.stat_result, uid: int, want_dir: bool) -> None:
    """Raise unless `st` (of `path`, not followed) is a dir/regular file owned by `uid`, 0o022-clean."""
    if stat.S_ISLNK(st.st_mode):
        raise ClusterError(
            f"refusing {path}: it is a symbolic link (to {os.readlink(path)}); "
            f"the cluster never follows links in its state. Remove it: rm {path}")
    kind_ok = stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)
    if not kind_ok:
        raise ClusterError(
            f"refusing {path}: expected a {'directory' if want_dir else 'regular file'}; "
            f"remove it and run again")
    if st.st_uid != uid:
        raise ClusterError(
            f"refusing {path}: owned by uid {st.st_uid}, expected uid {uid}; someone else "
            f"may have planted it. Inspect it, then remove it: rm -r {path}")
    if st.st_mode & _FOREIGN_WRITE:
        raise ClusterError(
            f"refusing {path}: writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"fix: chmod go-w {path}")


def check_dir(path: pathlib.Path, uid: int = 0) -> None:
    """Raise `ClusterError` unless `path` is a real directory owned by `uid` and 0o022-clean."""
    _check(path, os.lstat(path), uid, want_dir=True)


def ensure_dir(path: pathlib.Path, mode: int = 0o755, uid: int = 0) -> None:
    """Create `path` (one level) with `mode` if missing, then check it as `check_dir` does."""
    try:
        os.mkdir(path, mode)
        os.chmod(path, mode, follow_symlinks=False)  # the umask may have removed bits
    except FileExistsError:
        pass
    check_dir(path, uid)


def fresh_dir(path: pathlib.Path, mode: int = 0o755, uid: int = 0) -> None:
    """Delete `path` if it is a real directory (never a link's target), then create it empty.

    ``shutil.rmtree`` works on file descriptors and does not descend into
    symbolic links found inside; a link at `path` itself is refused here.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            _check(path, st, st.st_uid, want_dir=True)  # raises with the reason
        shutil.rmtree(path)
    ensure_dir(path, mode, uid)


def _open_checked(path: pathlib.Path, flags: int, mode: int, uid: int) -> int:
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            _check(path, os.lstat(path), uid, want_dir=False)
        raise
    try:
        _check(path, os.fstat(fd), uid, want_dir=False)
    except ClusterError:
        os.close(fd)
        raise
    return fd


def write_file(path: pathlib.Path, data: str | bytes, mode: int = 0o644, uid: int = 0) -> None:
    """Write `data` to `path` without following a link; the file must end up ours."""
    raw = data.encode() if isinstance(data, str) else data
    fd = _open_checked(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode, uid)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    os.chmod(path, mode, follow_symlinks=False)


def read_file(path: pathlib.Path, uid: int = 0) -> str | None:
    """The text of `path` if it is a trusted file, None if it does not exist."""
    try:
        fd = _open_checked(path, os.O_RDONLY, 0, uid)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read().decode()


def remove_file(path: pathlib.Path) -> None:
    """Remove `path` if it exists (a link is removed as a link, its target untouched)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


_held: dict[str, int] = {}  # lock path -> nesting depth in this process


@contextlib.contextmanager
def exclusive_lock(path: pathlib.Path, uid: int = 0) -> Iterator[None]:
    """Hold ``flock(LOCK_EX)`` on `path` for the block; re-entrant within one process.

    Does not wait: if another process holds it, raise `ClusterError` naming its pid,
    because a second ``up`` would tear down the cluster the first is using.
    """
    key = str(path)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = _open_checked(path, os.O_RDWR | os.O_CREAT, 0o644, uid)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ClusterError(
            f"another process (pid {holder}) is bringing the local cluster up, using it or "
            f"tearing it down (it holds {path}); wait for it to finish") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock
