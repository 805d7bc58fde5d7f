"""The dry-run provider (the default without an API key): writes what would be sent, calls no API.

A dry run ends in the status `dry_run_complete`: the training/validation JSONL and `run_manifest.json`
sit under `RUNS_ROOT/<run id>/`, no file id, no job id, no model.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from curation.provider_names import ProviderName

from finetune.providers.base import Provider, ProviderError, register


@register
class DryRunProvider(Provider):
    name = ProviderName.DRYRUN
    calls_api = False

    def write_run(self, *, run_dir: Path, files: dict[str, Path], manifest: dict) -> dict[str, Path]:
        """Copy the split files into the run's folder (if they are not there yet) and write the manifest."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        written = {}
        for split, source in files.items():
            target = run_dir / f"{split}.jsonl"
            if Path(source).resolve() != target.resolve():
                shutil.copyfile(source, target)
            written[split] = target
        manifest_path = run_dir / "run_manifest.json"
        manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
        written["manifest"] = manifest_path
        return written

    def _no_api(self, *args, **kwargs):
        raise ProviderError("the dry-run provider calls no API", code="dry_run")

    upload_file = create_job = find_job = retrieve_job = cancel_job = list_events = list_checkpoints = _no_api
    result_file_content = file_exists = _no_api

    def list_jobs(self, *, limit: int | None = None):
        return []
