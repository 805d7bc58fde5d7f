"""The render process: a capped child, forked once and reused, that runs `render_pdf` with a deadline per drawing.

A hostile PDF (memory, crash, endless loop) fails that one drawing instead of taking the worker down. No ORM,
no PyMuPDF import of its own (`curation.rendering.pdf` holds it).
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import struct
import threading
import time
from collections.abc import Callable

from curation.rendering.pdf import mupdf_memory_release, mupdf_preload, render_pdf
from curation.rendering.results import RenderError, RenderLimits, RenderResult

# --- Isolation: a capped render process, forked once and reused, with a deadline per drawing -------
#
# The render process is forked from the caller (no new interpreter to start) and serves render requests
# over a pipe, so a worker pays the fork once rather than per drawing and MuPDF's glyph cache stays warm.
# It has an address-space cap; when a render dies (cap, crash, deadline) only that drawing fails and the
# next request starts a fresh process. A process that inherited another's server (an RQ work-horse
# forked after one existed) never talks to it: it starts its own.

_RECYCLE_AFTER = 100  # renders per process: bounds heap fragmentation eating into the memory cap


def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _limit_memory(limit_mb: int) -> None:
    # RLIMIT_AS counts address space, and the child starts with the worker's (shared, copy-on-write)
    # mappings: the cap is what is mapped now plus the render's own budget.
    if limit_mb <= 0:
        return
    budget = _vm_size_bytes() + limit_mb * 1024 * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        budget = min(budget, hard)
    resource.setrlimit(resource.RLIMIT_AS, (budget, hard))


try:  # loaded once here: the forked child only calls it
    import ctypes

    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    # Linux: a render process orphaned by a killed worker must not keep rendering.
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _send(fd: int, payload) -> None:
    data = pickle.dumps(payload)
    view = memoryview(struct.pack(">Q", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _recv_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    """`size` bytes from fd; None on EOF; raises TimeoutError past the deadline."""
    chunks, missing = [], size
    while missing:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _recv(fd: int, deadline: float | None = None):
    header = _recv_exact(fd, 8, deadline)
    if header is None:
        return None
    body = _recv_exact(fd, struct.unpack(">Q", header)[0], deadline)
    return None if body is None else pickle.loads(body)


def _serve(requests: int, responses: int, memory_limit_mb: int) -> None:
    """The render process: one request in, one answer out, until EOF or recycling."""
    _die_with_parent()
    _limit_memory(memory_limit_mb)
    for served in range(1, _RECYCLE_AFTER + 1):
        request = _recv(requests)
        if request is None:
            return
        path, out_dir, limits, stem = request
        retire = served == _RECYCLE_AFTER

        def progress(done: int, total: int) -> None:
            # Before the answer, on the same pipe: the caller reads these until the answer comes.
            _send(responses, ("progress", (done, total), False))

        try:
            answer = ("ok", render_pdf(path, out_dir=out_dir, limits=limits, stem=stem, progress=progress))
        except RenderError as exc:
            answer = ("error", exc.message)
            retire = retire or "memory" in exc.message
        except MemoryError:
            answer = ("error", f"the PDF needs more than the {memory_limit_mb:,} MB render memory limit")
            retire = True
        except Exception as exc:
            answer = ("error", f"rendering failed: {type(exc).__name__}: {exc}")
            retire = True
        # Decoded images and fonts of this drawing are no use to the next one: give the memory back.
        mupdf_memory_release()
        _send(responses, (*answer, retire))
        if retire:
            return


class _RenderProcess:
    def __init__(self, memory_limit_mb: int):
        # Imported in the rendering process before the fork: the child starts warm, and the library does
        # not count against a drawing's memory cap. Processes that never render never import it.
        mupdf_preload()
        requests_r, requests_w = os.pipe()
        responses_r, responses_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns
            code = 0
            try:
                os.close(requests_w)
                os.close(responses_r)
                _serve(requests_r, responses_w, memory_limit_mb)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(requests_r)
        os.close(responses_w)
        self.pid, self.owner = pid, os.getpid()
        self.requests, self.responses = requests_w, responses_r
        self.memory_limit_mb = memory_limit_mb

    def stop(self, *, kill: bool = False) -> int:
        """Close the pipes and reap the process; returns its wait status (0 when it was reaped already)."""
        for fd in (self.requests, self.responses):
            try:
                os.close(fd)
            except OSError:
                pass
        if kill:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return 0


_process: _RenderProcess | None = None
_lock = threading.Lock()  # one conversation at a time on the pipes


def render_process_pid() -> int | None:
    """The live render process of this process, if any (the benchmark reads its peak RSS)."""
    return _process.pid if _process is not None and _process.owner == os.getpid() else None


def render_process_stop() -> None:
    """Stop this process's render process (tests; a new one starts on the next render)."""
    global _process
    if _process is not None and _process.owner == os.getpid():
        _process.stop(kill=True)
    _process = None


def _render_process(memory_limit_mb: int) -> _RenderProcess:
    global _process
    if _process is not None and _process.owner != os.getpid():
        # Inherited through a fork (an RQ work-horse): the pipes belong to the parent's conversation.
        for fd in (_process.requests, _process.responses):
            try:
                os.close(fd)
            except OSError:
                pass
        _process = None
    if _process is not None and _process.memory_limit_mb != memory_limit_mb:
        render_process_stop()
    if _process is not None and os.waitpid(_process.pid, os.WNOHANG)[0] != 0:
        # Died while idle (killed from outside): not this drawing's fault, start a fresh one.
        _process.stop()
        _process = None
    if _process is None:
        _process = _RenderProcess(memory_limit_mb)
    return _process


def render_isolated(
    path: str,
    *,
    out_dir: str,
    limits: RenderLimits,
    stem: str = "page",
    progress: Callable[[int, int], None] | None = None,
) -> RenderResult:
    """`render_pdf` in the capped render process, within `limits.timeout_seconds`.

    A MemoryError, a crash, a kill or the deadline becomes a RenderError; the caller process is untouched.
    `progress(done, total)` is called here, in the caller, as the render process reports pages.
    """
    with _lock:
        return _render_isolated(path, out_dir=out_dir, limits=limits, stem=stem, progress=progress)


def _answer(process: _RenderProcess, deadline: float, progress: Callable[[int, int], None] | None):
    """The render process's answer, handing the progress reports that come first to `progress`."""
    while True:
        answer = _recv(process.responses, deadline)
        if answer is None or answer[0] != "progress":
            return answer
        if progress is not None:
            progress(*answer[1])


def _render_isolated(
    path: str, *, out_dir: str, limits: RenderLimits, stem: str, progress: Callable[[int, int], None] | None
) -> RenderResult:
    global _process
    process = _render_process(limits.memory_limit_mb)
    deadline = time.monotonic() + limits.timeout_seconds
    try:
        _send(process.requests, (path, out_dir, limits, stem))
        answer = _answer(process, deadline, progress)
    except TimeoutError:
        process.stop(kill=True)
        _process = None
        raise RenderError(f"rendering took longer than {limits.timeout_seconds} s and was stopped") from None
    except (BrokenPipeError, OSError):
        answer = None
    except BaseException:
        # Interrupted mid-conversation (RQ's job timeout, Ctrl-C): an answer may still be on its way, and
        # the next request must not read it. Start over with a fresh process.
        process.stop(kill=True)
        _process = None
        raise
    if answer is not None:
        kind, value, retire = answer
        if retire:
            process.stop()
            _process = None
        if kind == "ok":
            return value
        raise RenderError(value)

    # The process died during this render: say how.
    status = process.stop()
    _process = None
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = " (probably out of memory)" if sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT) else ""
        raise RenderError(f"the renderer crashed on this PDF: killed by {name}{hint}")
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    raise RenderError(
        f"the renderer stopped without a result (exit code {code}); the PDF may need more than the "
        f"{limits.memory_limit_mb:,} MB render memory limit"
    )
