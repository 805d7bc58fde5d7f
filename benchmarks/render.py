"""Benchmark: the corpus drawings through the project's render path and through pdftoppm, in one run.

Ours is `drawing_render` per drawing: the capped render child (PyMuPDF), PNG/JPEG encoding, the move into
storage and the database writes, in a throwaway SQLite database and media root. pdftoppm (poppler-utils,
what pdf2image runs) renders the same files to the same pixel size and format (PNG for vector sheets,
JPEG for scans). Each side runs --rounds times interleaved; the best round counts (the machine is shared).
Goals: at least 1.5× pdftoppm's pages/s, and peak RSS below 500 MB on the largest sheet.

    .venv/bin/python benchmarks/render.py [--rounds 3] [--corpus ../shared/corpus]
"""
from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import ROOT, django_throwaway  # noqa: E402

WORKDIR = django_throwaway("render")

from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from curation import rendering  # noqa: E402
from curation.models import Drawing  # noqa: E402
from curation.services.drawings import drawing_ingest, drawing_render  # noqa: E402

GOAL_RATIO = 1.5
GOAL_RSS_MB = 500


def _render_process_peak_mb() -> float:
    """Peak RSS (VmHWM) of the live render process: it is reused, so rusage of reaped children misses it."""
    pid = rendering.render_process_pid()
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _self_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(drawings: list[Drawing]) -> tuple[float, int]:
    # Back to `uploaded` outside the timing: a re-render replaces the pages in place, as in production.
    Drawing.objects.filter(pk__in=[d.pk for d in drawings]).update(status=Drawing.Status.UPLOADED)
    pages = 0
    started = time.perf_counter()
    for drawing in drawings:
        drawing.status = Drawing.Status.UPLOADED
        done = drawing_render(drawing=drawing)
        if done.status != Drawing.Status.RENDERED:
            raise SystemExit(f"{drawing.original_name} did not render: {done.error}")
        pages += done.page_count
    return time.perf_counter() - started, pages


def _pdftoppm(files: list[tuple[Path, bool]], out: Path) -> tuple[float, int]:
    pages = 0
    started = time.perf_counter()
    for path, scanned in files:
        fmt = ["-jpeg", "-jpegopt", "quality=85"] if scanned else ["-png"]
        subprocess.run(["pdftoppm", *fmt, "-scale-to", "2048", str(path), str(out / path.stem)], check=True)
    elapsed = time.perf_counter() - started
    pages = sum(1 for _ in out.iterdir())
    for item in out.iterdir():
        item.unlink()
    return elapsed, pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    args = parser.parse_args()
    if not shutil.which("pdftoppm"):
        print("pdftoppm not found: install poppler-utils (Debian: sudo apt-get install poppler-utils)")
        return 2
    paths = sorted((Path(args.corpus) / "drawings").glob("*.pdf"))
    if not paths:
        print(f"no drawings under {args.corpus}/drawings")
        return 2
    # Tables straight from the models (like the tests' --nomigrations), whether or not migration files exist yet.
    settings.MIGRATION_MODULES = {app.label: None for app in apps.get_app_configs()}
    call_command("migrate", run_syncdb=True, verbosity=0)
    drawings = [drawing_ingest(content=p.read_bytes(), original_name=p.name, enqueue=False)[0] for p in paths]

    # The largest sheet first, in a fresh render process: that process's peak RSS is what the goal is about.
    largest = max(paths, key=lambda p: _page_area(p))
    largest_drawing = next(d for d in drawings if d.original_name == largest.name)
    rendering.render_process_stop()
    drawing_render(drawing=largest_drawing)
    largest_rss = _render_process_peak_mb()
    # A warm-up render of the rest tells which drawings are scans (pdftoppm then writes JPEG for them).
    for drawing in drawings:
        drawing_render(drawing=drawing)
        drawing.refresh_from_db()
    scanned = {d.original_name: d.has_text_layer is False for d in drawings}
    files = [(p, scanned[p.name]) for p in paths]

    out = WORKDIR / "pdftoppm"
    out.mkdir()
    ours_times, theirs_times = [], []
    for _ in range(args.rounds):
        ours_times.append(_ours(drawings))
        theirs_times.append(_pdftoppm(files, out))
    ours_s, pages = min(ours_times)
    theirs_s, their_pages = min(theirs_times)
    if their_pages != pages:
        print(f"warning: pdftoppm wrote {their_pages} pages, we rendered {pages}")
    ours_rate, theirs_rate = pages / ours_s, their_pages / theirs_s
    ratio = ours_rate / theirs_rate
    run_rss = max(_render_process_peak_mb(), _self_peak_mb())

    print(f"drawings: {len(paths)}, pages: {pages} ({sum(s for _, s in files)} scanned drawings), rounds: {args.rounds}")
    print(f"ours (render child + encode + storage + DB): {ours_s:6.2f} s  {ours_rate:6.2f} pages/s")
    print(f"pdftoppm -scale-to 2048 (png/jpeg):          {theirs_s:6.2f} s  {theirs_rate:6.2f} pages/s")
    print(f"largest sheet: {largest.name} ({_page_area(largest) / 1e6:.2f} Mpt²), peak RSS {largest_rss:.0f} MB; "
          f"whole run peak RSS {run_rss:.0f} MB (render process or this one)")
    ratio_ok, rss_ok = ratio >= GOAL_RATIO, largest_rss < GOAL_RSS_MB
    print(f"render: {ratio:.1f}x pdftoppm pages/s (goal >= {GOAL_RATIO}x) {'pass' if ratio_ok else 'FAIL'}, "
          f"peak RSS {largest_rss:.0f} MB on the largest sheet (goal < {GOAL_RSS_MB} MB) {'pass' if rss_ok else 'FAIL'}")
    return 0 if ratio_ok and rss_ok else 1


def _page_area(path: Path) -> float:
    # Read the largest MediaBox from the file without PyMuPDF (only curation/rendering/ imports it).
    import re

    best = 0.0
    for match in re.finditer(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]", path.read_bytes()):
        x0, y0, x1, y1 = (float(v) for v in match.groups())
        best = max(best, abs(x1 - x0) * abs(y1 - y0))
    return best


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(WORKDIR, ignore_errors=True)
