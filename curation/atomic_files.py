"""Files that appear under their final name only when complete: a `.partial` temp name, fsync, rename. No ORM.

A killed writer leaves only dot-files named `.<name>.<pid>[.<8 hex>].partial`; `gestima.leases` parses that
name (`_PARTIAL_PID`) to remove the files of dead processes, so `partial_path` is the one place that makes it.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

IOV_MAX = 1024


def partial_path(path: Path, *, unique: bool = True) -> Path:
    """The temp name `path` is written under, in its own directory, carrying this process's pid.

    `unique` adds 8 hex digits, for files two threads of one process may write at once.
    """
    tail = f".{uuid.uuid4().hex[:8]}" if unique else ""
    return path.with_name(f".{path.name}.{os.getpid()}{tail}.partial")


def bytes_write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp name: readers see no file or the whole file."""
    tmp = partial_path(path, unique=False)
    tmp.write_bytes(data)
    os.replace(tmp, path)


class AtomicFile:
    """Writes to a temp name in the target's directory; `commit()` fsyncs and renames, `discard()` removes.

    Readers therefore see either no file or the complete file under the final name, even if the
    process is killed midway (a killed export leaves only a dot-file with `.partial` in its name).
    """

    def __init__(self, path: Path):
        self.path = path
        self.tmp = partial_path(path)
        # Unbuffered: a line goes down in one writev() of its pieces, with no copy into a buffer.
        self.handle = open(self.tmp, "wb", buffering=0)
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.lines = 0

    def write_pieces(self, pieces: list[bytes]) -> None:
        """One line given as pieces (no concatenation copy of the large base64 parts)."""
        writev_all(self.handle.fileno(), pieces)
        for piece in pieces:
            self.sha256.update(piece)
            self.bytes += len(piece)
        self.lines += 1

    def finish(self) -> None:
        os.fsync(self.handle.fileno())
        self.handle.close()

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        self.tmp.unlink(missing_ok=True)

    def summary(self) -> dict:
        return {"sha256": self.sha256.hexdigest(), "bytes": self.bytes, "lines": self.lines}


def writev_all(fd: int, pieces: list[bytes]) -> None:
    """writev() until every byte is down (a regular file may still take a short write)."""
    views = [memoryview(p) for p in pieces if p]
    while views:
        written = os.writev(fd, views[:IOV_MAX])
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def fsync_dir(path: Path) -> None:
    """Make renames in `path` durable (best effort: some file systems refuse a directory fsync)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LineWriter:
    """Writes and hashes lines on a thread of its own while the caller builds the next ones.

    File writes and sha256 release the GIL, base64 does not: splitting the work this way runs them
    side by side on two cores. Each line may come with checks (callables run on the thread before the
    line is written: the export checks each page image's sha256 there, on the bytes already read), so
    they cost the caller nothing. The bounded queue keeps at most a few lines in memory; an error on the
    thread (disk full, a changed page) is raised to the caller at the next line or at `close()`, always
    before any file is renamed.
    """

    def __init__(self, depth: int = 4):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="export-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                file, pieces, checks = item
                try:
                    for check in checks:
                        check()
                    file.write_pieces(pieces)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    self.error = exc

    def put(self, file: AtomicFile, pieces: list[bytes], checks: list[Callable[[], None]] = ()) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((file, pieces, checks))

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error
