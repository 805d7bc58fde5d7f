"""Export of a dataset version: train.jsonl, validation.jsonl and manifest.json (OpenAI JSONL or open weights).

Export streams: members are read with `.iterator()`, each line is written as soon as it is built, and
files appear under their final names only when complete (`curation.atomic_files`). Page images come
through the one page loader (`curation.services.page_images`); the job around an export (request,
claim, recovery) is `curation.services.export_queue`.
"""
from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django.utils.text import slugify

from curation.atomic_files import AtomicFile, LineWriter, fsync_dir
from curation.models import DatasetVersion
from curation.open_weights import OpenWeightsImages, open_weights_guides, open_weights_line, open_weights_manifest
from curation.openai_format import dumps_line, line_pieces
from curation.selectors import EXPORT_LINE_ORDER
from curation.services.page_images import ExportError, PageImages

FORMATS = ("openai", "open_weights")
EXPORTED_FILES = ("train.jsonl", "validation.jsonl", "manifest.json")
_BATCH = 100
_SWITCH_INTERVAL = 0.0002


def format_errors(version: DatasetVersion) -> list[dict]:
    """The version's problems that OpenAI would refuse the file for."""
    return [p for p in (version.problems or []) if p.get("level", "error") == "error"]


def export_format_check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")


def _batches(iterator, size):
    while batch := list(itertools.islice(iterator, size)):
        yield batch


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
    export_format_check(fmt)
    errors = format_errors(version)
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
    files = {split: AtomicFile(out_dir / f"{split}.jsonl") for split in ("train", "validation")}
    images = OpenWeightsImages(out_dir) if fmt == "open_weights" else None
    done = 0
    writer = LineWriter()
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
            # One query per batch, on this thread: the writer never touches the DB. The sha256 of each page
            # runs on the writer thread, over the bytes already read for the base64.
            pages = PageImages.of_messages((member.messages for member in batch), gone_hint="rebuild the dataset",
                                           defer_content_check=True)
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
            for guide, data in open_weights_guides(version, out_dir, {s: h.lines for s, h in files.items()}).items():
                files[guide] = AtomicFile(out_dir / guide)
                files[guide].write_pieces([data])
                files[guide].finish()
        manifest = _manifest(version, fmt, summaries)
        if images is not None:
            manifest = open_weights_manifest(manifest)
        manifest_file = AtomicFile(out_dir / "manifest.json")
        manifest_file.write_pieces([json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")])
        manifest_file.finish()
        files["manifest"] = manifest_file
        # The manifest is renamed last: its presence says the JSONL files beside it are complete.
        for handle in files.values():  # insertion order: the manifest is last
            handle.commit()
        fsync_dir(out_dir)
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


def export_file_path(*, version: DatasetVersion, name: str) -> Path:
    """An exported file of the version for download; only the three known names, only when exported."""
    if name not in set(EXPORTED_FILES):
        raise ExportError(f"No exported file named {name!r}.")
    if version.export_status != DatasetVersion.ExportStatus.DONE or not version.export_dir:
        raise ExportError(f"{version} has not been exported yet.")
    path = Path(version.export_dir) / name
    if not path.is_file():
        raise ExportError(f"{name} of {version} is gone from {version.export_dir}: export again.")
    return path
