"""Exports of dataset versions (OpenAI JSONL, open-weight JSONL + images) and API-ready messages.

Export streams: members are read with `.iterator()`, each line is written as soon as it is built, and
files appear under their final names only when complete (temp name in the same dir, fsync, rename).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import queue
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from curation.models import DatasetVersion, DrawingPage
from curation.selectors import EXPORT_LINE_ORDER
from curation.openai_format import (
    decode_data_url,
    dumps_line,
    fingerprint,
    iter_image_parts,
    line_pieces,
    parse_page_ref,
    resolve_image_refs,
    sniff_mime,
)
from gestima.leases import lease_kept, lease_until, partial_files_remove, worker_stopped_message
from gestima.queues import QueueUnavailable, enqueue_on_commit, job_forget, job_is_pending, queue_ping

logger = logging.getLogger(__name__)


class ExportError(Exception):
    """An export that cannot go on; the message says what to do."""


def _read_page(page: DrawingPage) -> bytes:
    try:
        with page.image.open("rb") as handle:
            return handle.read()
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise ExportError(f"image file of page {page.pk} ({page}) cannot be read: {exc}") from exc


def _page_changed(page: DrawingPage, how: str) -> ExportError:
    return ExportError(f"image of drawing {page.drawing} page {page.number} (page id {page.pk}) changed since "
                       f"the dataset version was built ({how}): rebuild the dataset")


def _size_check(page: DrawingPage, expected: dict, data: bytes) -> None:
    """The free part of the check, done as the bytes are read: a page of another size is refused at once."""
    if "bytes" in expected and expected["bytes"] != len(data):
        raise _page_changed(page, f"{len(data):,} bytes instead of {expected['bytes']:,}")


def _content_check(page: DrawingPage, expected: dict, data: bytes) -> None:
    """The bytes must hash to the frozen sha256 (or, in a fingerprint without one, CRC-32).

    Size and modification time are never taken as proof: a file rewritten in place with the same size
    and a restored mtime would pass them, and a paid job would then train on the wrong image.
    """
    if expected.get("sha256"):
        if hashlib.sha256(data).hexdigest() != expected["sha256"]:
            raise _page_changed(page, "sha256 differs")
    elif "crc32" in expected and zlib.crc32(data) != expected["crc32"]:
        raise _page_changed(page, "CRC-32 differs")


def page_bytes(page: DrawingPage, expected: dict | None = None) -> bytes:
    """The page image bytes; refuses bytes that differ from what a dataset version froze (sha256)."""
    expected = expected or {}
    data = _read_page(page)
    _size_check(page, expected, data)
    _content_check(page, expected, data)
    return data


def _load_page(page_id: int, expected: dict | None = None) -> bytes:
    page = DrawingPage.objects.filter(pk=page_id).select_related("drawing").first()
    if page is None:
        raise ExportError(f"page {page_id} no longer exists: rebuild the example or the dataset")
    return page_bytes(page, expected)


def messages_with_images(messages: list[dict]) -> list[dict]:
    """API-ready messages: every `page:<id>` image reference replaced by a base64 data URL.

    Raises ExportError when a page is missing or its file cannot be read.
    """
    return resolve_image_refs(messages, _load_page)


# --- export of a dataset version --------------------------------------------------------------

FORMATS = ("openai", "open_weights")
_BATCH = 100
_SWITCH_INTERVAL = 0.0002
IMAGE_PLACEHOLDER = "<image>"


def _format_errors(version: DatasetVersion) -> list[dict]:
    return [p for p in (version.problems or []) if p.get("level", "error") == "error"]


class _AtomicFile:
    """Writes to a temp name in the target's directory; `commit()` fsyncs and renames, `discard()` removes.

    Readers therefore see either no file or the complete file under the final name, even if the
    process is killed midway (a killed export leaves only a dot-file with `.partial` in its name).
    """

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
        # Unbuffered: a line goes down in one writev() of its pieces, with no copy into a buffer.
        self.handle = open(self.tmp, "wb", buffering=0)
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.lines = 0

    def write_pieces(self, pieces: list[bytes]) -> None:
        """One line given as pieces (no concatenation copy of the large base64 parts)."""
        _writev_all(self.handle.fileno(), pieces)
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


def _writev_all(fd: int, pieces: list[bytes]) -> None:
    """writev() until every byte is down (a regular file may still take a short write)."""
    views = [memoryview(p) for p in pieces if p]
    while views:
        written = os.writev(fd, views[:1024])  # IOV_MAX
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


class _LineWriter:
    """Writes and hashes lines on a thread of its own while the caller builds the next ones.

    File writes and sha256 release the GIL, base64 does not: splitting the work this way runs them
    side by side on two cores. The same thread checks the sha256 of each page image in the line (the
    bytes already read for the base64, not read again), so the check costs the caller nothing. The
    bounded queue keeps at most a few lines in memory; an error on the thread (disk full, a changed
    page) is raised to the caller at the next line or at `close()`, always before any file is renamed.
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
                    for page, expected, data in checks:
                        _content_check(page, expected, data)
                    file.write_pieces(pieces)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    self.error = exc

    def put(self, file: _AtomicFile, pieces: list[bytes], checks: list = ()) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((file, pieces, checks))

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error


def _fsync_dir(path: Path) -> None:
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


def _batches(iterator, size):
    while batch := list(itertools.islice(iterator, size)):
        yield batch


class _BatchPages:
    """The page loader for one batch of members: one query for all their pages.

    `load` runs on the caller's thread and never queries the database: everything it needs (the
    drawing too, for error messages) is loaded here. It checks the size at once and leaves the sha256
    of each page to the writer thread: `take_checks()` hands over the pages read for the last line.
    """

    def __init__(self, batch):
        ids = {pid for member in batch for pid in _page_ids_of(member.messages)}
        self.pages = {p.pk: p for p in DrawingPage.objects.filter(pk__in=ids).select_related("drawing")
                      .only("id", "image", "number", "drawing__part_number", "drawing__original_name")}
        self.checks: list[tuple[DrawingPage, dict, bytes]] = []

    def load(self, page_id: int, expected: dict) -> bytes:
        page = self.pages.get(page_id)
        if page is None:
            raise ExportError(f"page {page_id} no longer exists: rebuild the dataset")
        data = _read_page(page)
        _size_check(page, expected, data)
        self.checks.append((page, expected, data))
        return data

    def take_checks(self) -> list[tuple[DrawingPage, dict, bytes]]:
        checks, self.checks = self.checks, []
        return checks


def _page_ids_of(messages) -> list[int]:
    return [pid for _, part in iter_image_parts(messages)
            if (pid := parse_page_ref((part.get("image_url") or {}).get("url"))) is not None]


class _OpenWeightsImages:
    """Image files beside the JSONL, named by content hash (a page used twice is written once)."""

    def __init__(self, out_dir: Path):
        self.dir = out_dir / "images"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.written = 0

    def save(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(sniff_mime(data), "bin")
        path = self.dir / f"{digest}.{ext}"
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            self.written += 1
        return f"images/{path.name}"


def _open_weights_line(messages: list[dict], target: str, load, images: _OpenWeightsImages) -> dict:
    """One row in the two chat layouts open-weight trainers read, over one list of image paths.

    `messages` (TRL, Hugging Face chat templates): every content a list of parts, `{"type": "text",
    "text": ...}` or `{"type": "image"}` where an image stood. `conversations` (LLaMA-Factory
    "sharegpt"): string contents with `<image>` where each image stood. `images`: paths relative to
    the export folder, in the order the images appear.
    """
    parts_out, text_out, paths = [], [], []
    for message in [*messages, {"role": "assistant", "content": target}]:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else []
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    parts.append({"type": "text", "text": part.get("text", "")})
                elif part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url", "")
                    page_id = parse_page_ref(url)
                    data = load(page_id, fingerprint(part)) if page_id is not None else decode_data_url(url)
                    paths.append(images.save(data))
                    parts.append({"type": "image"})
        parts_out.append({"role": message["role"], "content": parts})
        text_out.append({"role": message["role"], "content": "\n".join(
            IMAGE_PLACEHOLDER if p["type"] == "image" else p["text"] for p in parts)})
    return {"messages": parts_out, "conversations": text_out, "images": paths}


def _open_weights_guides(version: DatasetVersion, out_dir: Path, line_counts: dict[str, int]) -> dict[str, bytes]:
    """README.md (how to load the folder with `datasets`, TRL, LLaMA-Factory) and LLaMA-Factory's dataset_info.json.

    Only splits with rows are named: `datasets` refuses a split whose file is empty.
    """
    splits = [split for split in ("train", "validation") if line_counts.get(split)]
    name = f"{slugify(version.dataset.name) or f'dataset-{version.dataset_id}'}-v{version.number}"
    dataset_info = {
        f"{name}-{split}": {
            "file_name": f"{split}.jsonl", "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                     "assistant_tag": "assistant", "system_tag": "system"},
        } for split in splits
    }
    readme = render_to_string("curation/exports/open_weights_README.md", {
        "version": version, "name": name, "folder": out_dir.name, "splits": splits,
        "split_rows": [(split, line_counts[split]) for split in splits], "placeholder": IMAGE_PLACEHOLDER,
    })
    return {"README.md": readme.encode("utf-8"),
            "dataset_info.json": (json.dumps(dataset_info, indent=2) + "\n").encode("utf-8")}


def default_export_dir(version: DatasetVersion, fmt: str = "openai") -> Path:
    name = slugify(version.dataset.name) or f"dataset-{version.dataset_id}"
    return Path(settings.EXPORTS_ROOT) / f"{name}-v{version.number}-{fmt}"


def dataset_version_export(*, version: DatasetVersion, out_dir=None, fmt: str = "openai",
                           progress: Callable[[int, int], None] | None = None) -> dict:
    """Write train.jsonl, validation.jsonl and manifest.json for `version`; returns their paths.

    open_weights also writes images/, README.md (how to load it) and LLaMA-Factory's dataset_info.json.

    {"train": Path, "validation": Path | None (no validation rows), "manifest": Path}. Streams one line
    at a time; files appear atomically. `progress(done, total)` is called after every line (raising
    from it aborts the export and leaves no file under a final name). Raises ExportError.
    """
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")
    errors = _format_errors(version)
    if errors:
        first = errors[0]
        raise ExportError(
            f"{version} has {len(errors)} format error(s) (first: example {first.get('example_id')}: {first.get('message')}); "
            "OpenAI would refuse the file. Fix the examples and build a new version."
        )
    out_dir = Path(out_dir) if out_dir else default_export_dir(version, fmt)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"Cannot create the export directory {out_dir}: {exc}") from exc
    total = version.members.count()
    files = {split: _AtomicFile(out_dir / f"{split}.jsonl") for split in ("train", "validation")}
    images = _OpenWeightsImages(out_dir) if fmt == "open_weights" else None
    done = 0
    writer = _LineWriter()
    # This thread holds the GIL almost all the time (base64); by default the writer would wait 5 ms
    # for it after every write or hash call and the two threads would take turns instead of
    # overlapping. A 0.2 ms switch interval while the export runs lets them overlap (measured:
    # ~1.0x the raw baseline instead of ~1.2x). The interval is per process and restored after.
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(previous_interval, _SWITCH_INTERVAL))
    try:
        members = (version.members.order_by(*EXPORT_LINE_ORDER)
                   .values_list("split", "messages", "target", named=True).iterator(chunk_size=_BATCH))
        for batch in _batches(members, _BATCH):
            pages = _BatchPages(batch)  # one query per batch, on this thread: the writer never touches the DB
            for member in batch:
                if images is None:
                    pieces = line_pieces(member.messages, member.target, load_page=pages.load)
                else:
                    pieces = [dumps_line(_open_weights_line(member.messages, member.target, pages.load, images)).encode("utf-8")]
                writer.put(files[member.split], pieces, pages.take_checks())
                done += 1
                if progress:
                    progress(done, total)
        writer.close()
        for handle in files.values():
            handle.finish()
        summaries = {f"{s}.jsonl": h.summary() for s, h in files.items()}
        if images is not None:
            for guide, data in _open_weights_guides(version, out_dir, {s: h.lines for s, h in files.items()}).items():
                files[guide] = _AtomicFile(out_dir / guide)
                files[guide].write_pieces([data])
                files[guide].finish()
        manifest = _manifest(version, fmt, summaries, images)
        manifest_file = _AtomicFile(out_dir / "manifest.json")
        manifest_file.write_pieces([json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")])
        manifest_file.finish()
        files["manifest"] = manifest_file
        # The manifest is renamed last: its presence says the JSONL files beside it are complete.
        for handle in files.values():  # insertion order: the manifest is last
            handle.commit()
        _fsync_dir(out_dir)
    except BaseException:
        try:
            writer.close()
        except BaseException:  # noqa: BLE001 - the first error is the one to report
            pass
        for handle in files.values():
            handle.discard()
        raise
    finally:
        sys.setswitchinterval(previous_interval)
    return {
        "train": files["train"].path,
        "validation": files["validation"].path if files["validation"].lines else None,
        "manifest": files["manifest"].path,
    }


def _manifest(version: DatasetVersion, fmt: str, file_summaries: dict, images) -> dict:
    task = version.dataset.task
    manifest = {
        "format": fmt,
        "version_id": version.pk,
        "dataset": version.dataset.name,
        "version_number": version.number,
        "task": task.slug,
        "content_hash": version.content_hash,
        "prompt_version": version.prompt_version,
        "schema_version": version.schema_version,
        "files": file_summaries,
        "counts": version.counts,
        "tag_counts": version.tag_counts,
        "tokens": version.tokens,
        "cost_estimates": version.cost_estimates,
        "gates": version.gates,
        "gates_passed": version.gates_passed,
        "exported_at": timezone.now().isoformat(),
    }
    if images is not None:
        manifest["images_dir"] = "images"
        manifest["image_placeholder"] = IMAGE_PLACEHOLDER
        manifest["columns"] = {"messages": "chat, content as parts (TRL)",
                               "conversations": "chat, string content with <image> (LLaMA-Factory sharegpt)",
                               "images": "image paths relative to this folder"}
        manifest["how_to_load"] = "README.md"
    return manifest


# --- export as a background job: status claim, throttled progress, errors on the row -----------

PROGRESS_EVERY_SECONDS = 1.0
EXPORT_QUEUE = "default"


def export_job_id(version_id: int) -> str:
    return f"dataset-version-export-{version_id}"


def dataset_version_export_request(*, version: DatasetVersion, fmt: str = "openai") -> DatasetVersion:
    """Queue the export job (after commit). Raises ExportError when it cannot, QueueUnavailable when Redis is away."""
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")
    errors = _format_errors(version)
    if errors:
        raise ExportError(f"{version} has {len(errors)} format error(s): fix the examples and build a new version.")
    S = DatasetVersion.ExportStatus
    queue_ping(EXPORT_QUEUE)
    # A worker killed mid-export never reports back: its lease runs out (RQ may still call its job
    # `started` for minutes), and with no job left in Redis a `queued` status is stale too.
    free = Q(export_status__in=[S.NONE, S.DONE, S.FAILED]) | Q(export_status=S.RUNNING, export_lease_until__lt=timezone.now())
    if not job_is_pending(queue_name=EXPORT_QUEUE, job_id=export_job_id(version.pk)):
        free |= Q(export_status__in=[S.QUEUED, S.RUNNING])
    was_running = DatasetVersion.objects.filter(pk=version.pk, export_status=S.RUNNING).exists()
    with transaction.atomic():
        claimed = DatasetVersion.objects.filter(Q(pk=version.pk) & free).update(
            export_status=S.QUEUED, export_progress=0, export_error="", export_format=fmt, export_attempts=0,
            export_lease_until=None,
        )
        if not claimed:
            raise ExportError(f"{version} is already being exported.")
        if was_running:
            _abandoned_export_clear(version)
        _export_enqueue(version.pk, fmt)
    version.refresh_from_db()
    return version


def dataset_version_export_run(*, version_id: int, fmt: str = "openai") -> DatasetVersion | None:
    """The job's work: claim queued → running (so two workers never export one version), export, record."""
    # The lease says the worker is alive; the attempt count bounds the retries after a killed worker.
    claimed = DatasetVersion.objects.filter(pk=version_id, export_status=DatasetVersion.ExportStatus.QUEUED).update(
        export_status=DatasetVersion.ExportStatus.RUNNING, export_progress=0, export_error="", export_format=fmt,
        export_lease_until=lease_until(), export_attempts=F("export_attempts") + 1,
    )
    if not claimed:
        return None  # done already, or another worker has it
    version = DatasetVersion.objects.select_related("dataset__task").get(pk=version_id)
    last = [0.0]

    def record(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS or done == total:
            last[0] = now
            DatasetVersion.objects.filter(pk=version_id).update(export_progress=done)

    def renew() -> int:
        return DatasetVersion.objects.filter(pk=version_id, export_status=DatasetVersion.ExportStatus.RUNNING).update(
            export_lease_until=lease_until())

    try:
        with lease_kept(renew):
            paths = dataset_version_export(version=version, fmt=fmt, progress=record)
    except Exception as exc:
        dataset_version_export_fail(version_id=version_id, error=str(exc))
        raise
    manifest = json.loads(paths["manifest"].read_text())
    DatasetVersion.objects.filter(pk=version_id).update(
        export_status=DatasetVersion.ExportStatus.DONE, export_dir=str(paths["manifest"].parent),
        manifest=manifest, exported_at=timezone.now(), export_error="",
    )
    version.refresh_from_db()
    return version


def dataset_version_export_fail(*, version_id: int, error: str) -> None:
    """Store why an export failed (also called by the job's on_failure hook, e.g. on a timeout)."""
    DatasetVersion.objects.filter(pk=version_id).exclude(export_status=DatasetVersion.ExportStatus.DONE).update(
        export_status=DatasetVersion.ExportStatus.FAILED, export_error=(error or "export failed")[:5000]
    )


def dataset_version_export_worker_lost(*, version_id: int) -> None:
    """RQ saw the export's worker die (the job's on_failure hook): end the lease, so the next recovery pass
    takes the version back. Not queued from here: RQ still records the dead job under its id after the
    hook returns, and would overwrite a new one."""
    DatasetVersion.objects.filter(pk=version_id, export_status=DatasetVersion.ExportStatus.RUNNING).update(
        export_lease_until=timezone.now() - timedelta(seconds=1))


def _abandoned_export_clear(version: DatasetVersion) -> None:
    # The dead job is deleted so the retry can use its id; the dead process's `.partial` files go.
    job_forget(queue_name=EXPORT_QUEUE, job_id=export_job_id(version.pk))
    for fmt in FORMATS:
        out_dir = default_export_dir(version, fmt)
        partial_files_remove(out_dir, depth=2)


def dataset_version_exports_abandoned_recover(*, version_ids=None) -> dict[str, list[int]]:
    """Take back exports left `running` by a worker that is gone (lease run out): queue them again, or fail
    them in words once JOB_MAX_ATTEMPTS runs were started. Returns {"queued": ids, "failed": ids}.

    Conditional UPDATEs: two recoveries at once never both take one version. The dead process's
    `.partial` files are removed.
    """
    S = DatasetVersion.ExportStatus
    now = timezone.now()
    rows = DatasetVersion.objects.filter(export_status=S.RUNNING).filter(
        Q(export_lease_until__lt=now) | Q(export_lease_until__isnull=True))
    if version_ids is not None:
        rows = rows.filter(pk__in=list(version_ids))
    outcome = {"queued": [], "failed": []}
    for version in rows.select_related("dataset"):
        if version.export_lease_until is None and job_is_pending(queue_name=EXPORT_QUEUE, job_id=export_job_id(version.pk)):
            continue  # running since before leases existed: left to RQ's own report (AbandonedJobError)
        taken = DatasetVersion.objects.filter(pk=version.pk, export_status=S.RUNNING,
                                              export_lease_until=version.export_lease_until)
        if version.export_attempts >= settings.JOB_MAX_ATTEMPTS:
            message = worker_stopped_message(doing="exporting this version", attempts=version.export_attempts,
                                             again="Export again")
            if taken.update(export_status=S.FAILED, export_error=message, export_lease_until=None):
                logger.warning("export of version %s: worker stopped %s times, failed", version.pk, version.export_attempts)
                outcome["failed"].append(version.pk)
                _abandoned_export_clear(version)
            continue
        if taken.update(export_status=S.QUEUED, export_progress=0, export_lease_until=None):
            logger.warning("export of version %s: its worker stopped; queued again", version.pk)
            _abandoned_export_clear(version)
            outcome["queued"].append(version.pk)
            try:
                _export_enqueue(version.pk, version.export_format or "openai")
            except QueueUnavailable:
                logger.warning("Redis is away: the export of version %s stays queued", version.pk)
    return outcome


def _export_enqueue(version_id: int, fmt: str) -> None:
    from curation.jobs import dataset_version_export_job, dataset_version_export_job_failed

    enqueue_on_commit(EXPORT_QUEUE, dataset_version_export_job, version_id, fmt, job_id=export_job_id(version_id),
                      on_failure=dataset_version_export_job_failed)


def export_file_path(*, version: DatasetVersion, name: str) -> Path:
    """An exported file of the version for download; only the three known names, only when exported."""
    if name not in {"train.jsonl", "validation.jsonl", "manifest.json"}:
        raise ExportError(f"No exported file named {name!r}.")
    if version.export_status != DatasetVersion.ExportStatus.DONE or not version.export_dir:
        raise ExportError(f"{version} has not been exported yet.")
    path = Path(version.export_dir) / name
    if not path.is_file():
        raise ExportError(f"{name} of {version} is gone from {version.export_dir}: export again.")
    return path
