"""curation.rendering.isolation: the capped render process (memory cap, a killed process, the deadline)."""

import os

from curation import rendering
from curation.rendering import isolation
from tests.curation.test_rendering import failure, render


def test_huge_image_renders_within_the_memory_cap(corpus, tmp_path):
    # 20000 × 20000 1-bit image (400 Mpixel decoded): rendered to ≤ 2048 px under a 300 MB cap.
    limits = rendering.RenderLimits(memory_limit_mb=300)
    page = render(corpus / "bad" / "single_image_20000x20000_1bit.pdf", tmp_path, limits).pages[0]
    assert max(page.width, page.height) == 2048


def test_a_render_above_the_memory_cap_fails_cleanly_and_the_caller_survives(corpus, tmp_path):
    # 8000 px asks for ~135 MB of pixmap: above a 40 MB cap, the child fails, this process goes on.
    greedy = rendering.RenderLimits(
        memory_limit_mb=40, max_side_px=8000, max_pixels=10**9, dpi_cap=2000, max_image_bytes=10**9
    )
    message = failure(corpus / "drawings" / "JR_814059.pdf", tmp_path, greedy)
    assert "memory" in message and "40 MB" in message
    assert render(corpus / "drawings" / "JR_814059.pdf", tmp_path).page_count == 1


def test_a_render_process_killed_mid_render_fails_that_drawing_only(corpus, tmp_path, monkeypatch):
    import signal

    import psutil

    render(corpus / "qpdf" / "minimal.pdf", tmp_path)
    idle = psutil.Process(rendering.render_process_pid())
    idle.kill()  # killed while idle: the next render just works
    import time

    deadline = time.monotonic() + 10  # SIGKILL of an idle process lands in milliseconds
    while idle.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"render process {idle.pid} still {idle.status()!r} 10 s after SIGKILL"
        time.sleep(0.005)
    assert render(corpus / "qpdf" / "minimal.pdf", tmp_path).page_count == 1

    rendering.render_process_stop()
    # The kernel's OOM killer in the middle of a render, as the next forked process will see it.
    monkeypatch.setattr(isolation, "render_pdf", lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))
    message = failure(corpus / "qpdf" / "minimal.pdf", tmp_path)
    assert message == "the renderer crashed on this PDF: killed by SIGKILL (probably out of memory)"
    monkeypatch.undo()
    rendering.render_process_stop()
    assert render(corpus / "qpdf" / "minimal.pdf", tmp_path).page_count == 1


def test_a_stuck_render_is_stopped_at_the_deadline(corpus, tmp_path, monkeypatch):
    import time

    rendering.render_process_stop()  # the next render process is forked with the slow render_pdf
    monkeypatch.setattr(isolation, "render_pdf", lambda *a, **k: time.sleep(30))
    limits = rendering.RenderLimits(timeout_seconds=1)
    started = time.monotonic()
    assert (
        failure(corpus / "qpdf" / "minimal.pdf", tmp_path, limits) == "rendering took longer than 1 s and was stopped"
    )
    assert time.monotonic() - started < 10
    monkeypatch.undo()
    assert render(corpus / "qpdf" / "minimal.pdf", tmp_path).page_count == 1  # a fresh process takes over
