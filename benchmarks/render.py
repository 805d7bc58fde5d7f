"""Benchmark: the corpus drawings rendered the way users' uploads are, through a real render worker, against
pdftoppm on the same pages in the same run.

The drawings are imported with `drawing_ingest` (as an upload is) into a throwaway SQLite file and media root,
queued on a throwaway Redis, and rendered by `manage.py rqworker render --burst` with the render queue's worker
class (gestima.worker.RenderWorker), a subprocess opening the same SQLite file. Ours is the wall time from the
worker's start to the last rendered drawing. pdftoppm (poppler-utils, what pdf2image runs) renders the same
files to the same pixel size and format (PNG for vector sheets, JPEG for scans). Each side runs --rounds times
interleaved; the best round counts (the machine is shared). The fixed cost of a job is measured with --jobs
tiny one-page PDFs, and as many corrupt PDFs that fail at once, against a worker with nothing to do.
Goals: at least 1.5x pdftoppm's pages/s through the worker, and a fixed cost below 0.2 s a job.

    .venv/bin/python benchmarks/render.py [--rounds 3] [--jobs 40] [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import ROOT, django_throwaway  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.redis_server import session_redis_url  # noqa: E402

session_redis_url()  # a redis-server of this run's own (REDIS_URL, inherited by the worker), stopped at exit
WORKDIR = django_throwaway("render")

import psutil  # noqa: E402
from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Max  # noqa: E402

from curation.models import Drawing  # noqa: E402
from curation.services.drawing_uploads import drawing_ingest  # noqa: E402
from curation.services.drawings import drawing_render_enqueue  # noqa: E402

RENDER_WORKER = "gestima.worker.RenderWorker"
FORKING_WORKER = "gestima.worker.Worker"  # one work-horse per job: what the render queue had before
FORKING_JOBS = 10  # the forking worker's fixed cost is measured for comparison only (about 1.5 s a job)
GOAL_RATIO = 1.5
GOAL_FIXED_S = 0.2


def _burst(worker_class: str, log: Path) -> tuple[float, float, float]:
    """Run a burst render worker to the end; (seconds from its start to the last drawing it finished,
    seconds to its exit, peak RSS in MB of its render process)."""
    started_wall, started = time.time(), time.perf_counter()
    with open(log, "ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "render", "--burst", "--worker-class", worker_class],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    peak_mb = 0.0
    while worker.poll() is None:
        peak_mb = max(peak_mb, _children_peak_mb(worker.pid))
        time.sleep(0.25)
    exited = time.perf_counter() - started
    if worker.returncode != 0:
        raise SystemExit(f"the worker exited with {worker.returncode}; log: {log}")
    last = Drawing.objects.aggregate(last=Max("updated_at"))["last"]
    return (last.timestamp() - started_wall if last else exited), exited, peak_mb


def _children_peak_mb(pid: int) -> float:
    # The render process is the worker's child (or a work-horse's): its VmHWM is its peak so far.
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    peak = 0.0
    for child in children:
        try:
            for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return peak


def _queue_again(drawings: list[Drawing]) -> None:
    # Back to `uploaded` and queued, outside the timing: a re-render replaces the pages in place.
    Drawing.objects.filter(pk__in=[d.pk for d in drawings]).update(status=Drawing.Status.UPLOADED)
    for drawing in drawings:
        drawing.status = Drawing.Status.UPLOADED
        drawing_render_enqueue(drawing=drawing)


def _ours(drawings: list[Drawing], worker_class: str, log: Path) -> tuple[float, int, float]:
    _queue_again(drawings)
    seconds, _, peak_mb = _burst(worker_class, log)
    done = Drawing.objects.filter(pk__in=[d.pk for d in drawings])
    failed = done.exclude(status=Drawing.Status.RENDERED).first()
    if failed is not None:
        raise SystemExit(f"{failed.original_name} did not render ({failed.status}): {failed.error}")
    return seconds, sum(d.page_count for d in done), peak_mb


def _pdftoppm(files: list[tuple[Path, bool]], out: Path) -> tuple[float, int]:
    started = time.perf_counter()
    for path, scanned in files:
        fmt = ["-jpeg", "-jpegopt", "quality=85"] if scanned else ["-png"]
        subprocess.run(["pdftoppm", *fmt, "-scale-to", "2048", str(path), str(out / path.stem)], check=True)
    elapsed = time.perf_counter() - started
    pages = sum(1 for _ in out.iterdir())
    for item in out.iterdir():
        item.unlink()
    return elapsed, pages


def _tiny_pdf(number: int) -> bytes:
    """A valid 2 x 2 in one-page PDF with one line of text, different bytes for each number."""
    content = f"BT /F1 12 Tf 20 70 Td (Job {number}) Tj ET".encode()
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 144 144] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    data, offsets = b"%PDF-1.4\n", []
    for index, body in enumerate(bodies, 1):
        offsets.append(len(data))
        data += b"%d 0 obj\n%s\nendobj\n" % (index, body)
    xref = len(data)
    data += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    data += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return data + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(bodies) + 1, xref)


def _corrupt_pdf(number: int) -> bytes:
    """A PDF header and nothing a reader can use: fails at open."""
    return b"%PDF-1.4\n" + f"not a drawing {number}\n".encode() * 20


def _fixed_cost(
    make, label: str, count: int, log: Path, idle_s: float, expect: str, worker_class: str = RENDER_WORKER
) -> float:
    drawings = [drawing_ingest(content=make(n), original_name=f"{label}-{n}.pdf")[0] for n in range(count)]
    _, exited, _ = _burst(worker_class, log)
    statuses = set(Drawing.objects.filter(pk__in=[d.pk for d in drawings]).values_list("status", flat=True))
    if statuses != {expect}:
        raise SystemExit(f"{label} jobs ended {statuses}, expected {expect}; log: {log}")
    Drawing.objects.filter(pk__in=[d.pk for d in drawings]).delete()
    return max(exited - idle_s, 0.0) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=40, help="jobs of each kind for the fixed cost")
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
    log = WORKDIR / "worker.log"

    # A worker with nothing to do: its start and exit, taken off the fixed cost below.
    idle_s = min(_burst(RENDER_WORKER, log)[1] for _ in range(2))
    tiny_s = _fixed_cost(_tiny_pdf, "tiny", args.jobs, log, idle_s, Drawing.Status.RENDERED)
    corrupt_s = _fixed_cost(_corrupt_pdf, "corrupt", args.jobs, log, idle_s, Drawing.Status.FAILED)
    forking_idle_s = _burst(FORKING_WORKER, log)[1]
    forking_corrupt_s = _fixed_cost(
        _corrupt_pdf, "forked", FORKING_JOBS, log, forking_idle_s, Drawing.Status.FAILED, worker_class=FORKING_WORKER
    )

    # Imported as an upload is, and queued: the first round renders what the upload queued.
    drawings = [drawing_ingest(content=p.read_bytes(), original_name=p.name)[0] for p in paths]
    # Its first render (what the uploads queued) also tells which drawings are scans: JPEG for pdftoppm too.
    _burst(RENDER_WORKER, log)
    scanned = dict(
        Drawing.objects.filter(pk__in=[d.pk for d in drawings]).values_list("original_name", "has_text_layer")
    )
    files = [(p, scanned[p.name] is False) for p in paths]
    forking_s, forking_pages, _ = _ours(drawings, FORKING_WORKER, log)

    out = WORKDIR / "pdftoppm"
    out.mkdir()
    ours_runs, theirs_runs = [], []
    for _ in range(args.rounds):
        ours_runs.append(_ours(drawings, RENDER_WORKER, log))
        theirs_runs.append(_pdftoppm(files, out))
    seconds, pages, _ = min(ours_runs)
    peak_mb = max(run[2] for run in ours_runs)
    theirs_s, their_pages = min(theirs_runs)
    if their_pages != pages:
        print(f"warning: pdftoppm wrote {their_pages} pages, we rendered {pages}")
    ours_rate, theirs_rate, forking_rate = pages / seconds, their_pages / theirs_s, forking_pages / forking_s
    ratio = ours_rate / theirs_rate
    fixed_s = max(tiny_s, corrupt_s)

    print(
        f"drawings: {len(paths)}, pages: {pages} ({sum(s for _, s in files)} scanned drawings), rounds: {args.rounds}"
    )
    print(f"render worker (rqworker render --burst, start to last page): {seconds:6.2f} s  {ours_rate:6.2f} pages/s")
    print(
        f"forking worker (a work-horse per job, one round):            {forking_s:6.2f} s  {forking_rate:6.2f} pages/s"
        f"  (render worker: {ours_rate / forking_rate:.1f}x)"
    )
    print(f"pdftoppm -scale-to 2048 (png/jpeg):                          {theirs_s:6.2f} s  {theirs_rate:6.2f} pages/s")
    print(
        f"fixed cost a job ({args.jobs} each, worker start/exit {idle_s:.2f} s taken off): tiny 1-page PDF "
        f"{tiny_s * 1000:.0f} ms, corrupt PDF failing at once {corrupt_s * 1000:.0f} ms "
        f"(forking worker: {forking_corrupt_s * 1000:.0f} ms, {FORKING_JOBS} jobs)"
    )
    print(
        f"render process peak RSS over the rounds: {peak_mb:.0f} MB (cap: {settings.RENDER_MEMORY_LIMIT_MB} MB a "
        f"drawing)"
    )
    ratio_ok, fixed_ok = ratio >= GOAL_RATIO, fixed_s < GOAL_FIXED_S
    print(
        f"render: {ratio:.1f}x pdftoppm pages/s through the worker (goal >= {GOAL_RATIO}x) "
        f"{'pass' if ratio_ok else 'FAIL'}, fixed cost {fixed_s:.2f} s a job (goal < {GOAL_FIXED_S} s) "
        f"{'pass' if fixed_ok else 'FAIL'}"
    )
    return 0 if ratio_ok and fixed_ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(WORKDIR, ignore_errors=True)
