"""Export of a dataset version: train.jsonl, validation.jsonl and manifest.json (OpenAI JSONL or open weights).

Export streams: members are read with `.iterator()`, each line is written as soon as it is built, and
files appear under their final names only when complete (`gestima.storage`: a local folder or a bucket).
Page images come through the one page loader (`curation.services.page_images`); the job around an export
(request, claim, recovery) is `curation.services.export_queue`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.core.files.storage import FileSystemStorage, Storage
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from curation.atomic_files import LineWriter
from curation.models import DatasetVersion
from curation.open_weights import OpenWeightsImages, open_weights_guides, open_weights_line, open_weights_manifest
from curation.openai_format import dumps_line, line_pieces, page_ref_ids
from curation.selectors import EXPORT_LINE_ORDER
from curation.services.page_images import ExportError, PageImages
from gestima.storage import (
    exports_storage,
    storage_atomic_file,
    storage_commit_durable,
    storage_location,
    storage_name,
    storage_stream,
    storage_write_bytes,
)

FORMATS = ("openai", "open_weights")
EXPORTED_FILES = ("train.jsonl", "validation.jsonl", "manifest.json")
_BATCH = 100
_SWITCH_INTERVAL = 0.0002
_READERS, _READ_AHEAD = 2, 2


def format_errors(version: DatasetVersion) -> list[dict]:
    """The version's problems that OpenAI would refuse the file for."""
    return [p for p in (version.problems or []) if p.get("level", "error") == "error"]


def export_format_check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")


def _member_batches(version: DatasetVersion, size: int):
    """The version's members in export order, `size` at a time, each batch one query read to its end.

    Not one `.iterator()` over them all: on SQLite that keeps a read transaction open for the whole export,
    and once the lease heartbeat (another connection) has written, the job's own progress UPDATE on that
    connection fails at once with "database is locked" (a stale WAL snapshot cannot become a writer).
    Keyset pages on (split, position, id) keep the memory of one batch and no statement open between them.
    """
    rows = version.members.order_by(*EXPORT_LINE_ORDER, "pk").values_list(
        "split", "position", "pk", "messages", "target", named=True
    )
    after = None
    while True:
        page = rows
        if after is not None:
            split, position, pk = after
            page = rows.filter(
                Q(split__gt=split)
                | Q(split=split, position__gt=position)
                | Q(split=split, position=position, pk__gt=pk)
            )
        batch = list(page[:size])
        if not batch:
            return
        yield batch
        after = (batch[-1].split, batch[-1].position, batch[-1].pk)


def default_export_name(version: DatasetVersion, fmt: str = "openai") -> str:
    """The version's export folder inside the exports storage."""
    name = slugify(version.dataset.name) or f"dataset-{version.dataset_id}"
    return f"{name}-v{version.number}-{fmt}"


def default_export_dir(version: DatasetVersion, fmt: str = "openai") -> Path:
    """The export folder on this machine, when the exports storage is a local folder."""
    return Path(exports_storage().path(default_export_name(version, fmt)))


@dataclass
class ExportWritten:
    """What an export left in its storage: the names of its files (validation None without rows), the manifest."""

    storage: Storage
    folder: str
    files: dict[str, str | None]
    manifest: dict


def dataset_version_export(
    *, version: DatasetVersion, out_dir=None, fmt: str = "openai", progress: Callable[[int, int], None] | None = None
) -> dict:
    """Write the version into a local folder (`out_dir`, else its folder under EXPORTS_ROOT); returns its paths.

    {"train": Path, "validation": Path | None (no validation rows), "manifest": Path}. For the command line
    and local use; the export job writes through `dataset_version_export_store` (a folder or a bucket).
    """
    out_dir = Path(out_dir) if out_dir else default_export_dir(version, fmt)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"Cannot create the export directory {out_dir}: {exc}") from exc
    written = dataset_version_export_store(
        version=version, storage=FileSystemStorage(location=out_dir), folder="", fmt=fmt, progress=progress
    )
    return {key: out_dir / name if name else None for key, name in written.files.items()}


def dataset_version_export_store(
    *,
    version: DatasetVersion,
    storage: Storage,
    folder: str,
    fmt: str = "openai",
    progress: Callable[[int, int], None] | None = None,
) -> ExportWritten:
    """Write train.jsonl, validation.jsonl and manifest.json for `version` into `folder` of `storage`.

    open_weights also writes images/, README.md (how to load it) and LLaMA-Factory's dataset_info.json.
    Streams one line at a time (into a bucket as a multipart upload, memory flat); every file appears
    under its final name only when complete, the manifest last. `progress(done, total)` is called after
    every line (raising from it aborts the export and leaves no file under a final name). Raises ExportError.
    """
    export_format_check(fmt)
    errors = format_errors(version)
    if errors:
        first = errors[0]
        raise ExportError(
            f"{version} has {len(errors)} format error(s) (first: example {first.get('example_id')}: "
            f"{first.get('message')}); "
            "OpenAI would refuse the file. Fix the examples and build a new version."
        )

    def name(file: str) -> str:
        return f"{folder}/{file}" if folder else file

    try:
        files = {split: storage_atomic_file(storage, name(f"{split}.jsonl")) for split in ("train", "validation")}
    except OSError as exc:
        raise ExportError(f"Cannot write into {storage_location(storage, folder)}: {exc}") from exc
    total = version.members.count()
    images = None
    if fmt == "open_weights":
        images = OpenWeightsImages(lambda file, data: storage_write_bytes(storage, name(file), data))
    done = 0
    writer = LineWriter()
    # This thread holds the GIL almost all the time (base64); by default the writer would wait 5 ms
    # for it after every write or hash call and the two threads would take turns instead of
    # overlapping. A 0.2 ms switch interval while the export runs lets them overlap (measured:
    # ~1.0x the raw baseline instead of ~1.2x). The interval is per process and restored after.
    # Page images are read a few ahead on threads: from a bucket each is a GET whose round trip would
    # otherwise stall the line being built (~5 ms a page on the local S3 server). Two, two ahead: four
    # readers measured no faster on two cores, and their buffers raised the worker's peak RSS by ~50 MB.
    reader = ThreadPoolExecutor(_READERS, thread_name_prefix="export-page-read")
    pages = None
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(previous_interval, _SWITCH_INTERVAL))
    try:
        for batch in _member_batches(version, _BATCH):
            # One query per batch, on this thread: the writer never touches the DB. The sha256 of each page
            # runs on the writer thread, over the bytes already read for the base64.
            pages = PageImages.of_messages(
                (member.messages for member in batch), gone_hint="rebuild the dataset", defer_content_check=True
            ).read_ahead(
                (pid for member in batch for pid in page_ref_ids(member.messages)), pool=reader, window=_READ_AHEAD
            )
            for member in batch:
                if images is None:
                    pieces = line_pieces(member.messages, member.target, load_page=pages.load)
                else:
                    line = open_weights_line(member.messages, member.target, pages.load, images)
                    pieces = [dumps_line(line).encode("utf-8")]
                writer.put(files[member.split], pieces, pages.take_checks())
                done += 1
                if progress:
                    progress(done, total)
        writer.close()
        for handle in files.values():
            handle.finish()
        summaries = {f"{s}.jsonl": h.summary() for s, h in files.items()}
        if images is not None:
            folder_path = Path(storage_location(storage, folder))
            counts = {s: h.lines for s, h in files.items()}
            for guide, data in open_weights_guides(version, folder_path, counts).items():
                files[guide] = storage_atomic_file(storage, name(guide))
                files[guide].write_pieces([data])
                files[guide].finish()
        manifest = _manifest(version, fmt, summaries)
        if images is not None:
            manifest = open_weights_manifest(manifest)
        manifest_file = storage_atomic_file(storage, name("manifest.json"))
        manifest_file.write_pieces([json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")])
        manifest_file.finish()
        files["manifest"] = manifest_file
        # The manifest is committed last: its presence says the JSONL files beside it are complete.
        for handle in files.values():  # insertion order: the manifest is last
            handle.commit()
        storage_commit_durable(storage, folder)
    except BaseException:
        if pages is not None:
            pages.cancel()
        try:
            writer.close()
        except BaseException:  # noqa: BLE001 - the first error is the one to report
            pass
        for handle in files.values():
            handle.discard()
        raise
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        sys.setswitchinterval(previous_interval)
    return ExportWritten(
        storage=storage,
        folder=folder,
        manifest=manifest,
        files={
            "train": name("train.jsonl"),
            "validation": name("validation.jsonl") if files["validation"].lines else None,
            "manifest": name("manifest.json"),
        },
    )


def _manifest(version: DatasetVersion, fmt: str, file_summaries: dict) -> dict:
    task = version.dataset.task
    return {
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


def export_file_open(*, version: DatasetVersion, name: str):
    """An exported file of the version for download, as a stream (read as sent: memory stays flat), and its size.

    Only the three known names, only when exported. Raises ExportError when it is not there (any more).
    """
    if name not in set(EXPORTED_FILES):
        raise ExportError(f"No exported file named {name!r}.")
    if version.export_status != DatasetVersion.ExportStatus.DONE or not version.export_dir:
        raise ExportError(f"{version} has not been exported yet.")
    storage = exports_storage()
    try:
        key = f"{storage_name(storage, version.export_dir)}/{name}"
    except ValueError:  # a folder outside the exports storage (EXPORTS_ROOT moved since)
        raise ExportError(f"{name} of {version} is gone from {version.export_dir}: export again.") from None
    if not storage.exists(key):
        raise ExportError(f"{name} of {version} is gone from {version.export_dir}: export again.")
    return storage_stream(storage, key), storage.size(key)
