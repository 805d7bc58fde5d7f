"""The dry-run provider (the default without an API key): writes what would be sent, calls no API.

A dry run ends in the status `dry_run_complete`: the training/validation JSONL and `run_manifest.json`
sit in the run's folder of the runs storage (`RUNS_ROOT/<run id>/`, or runs/<run id>/ in the bucket), no file
id, no job id, no model.
"""

from __future__ import annotations

import json

from django.core.files.storage import Storage

from curation.provider_names import ProviderName

from finetune.providers.base import Provider, ProviderError, register
from gestima.storage import storage_write_bytes


@register
class DryRunProvider(Provider):
    name = ProviderName.DRYRUN
    calls_api = False

    def write_run(self, *, storage: Storage, folder: str, manifest: dict) -> str:
        """Write `run_manifest.json` beside the split files the export put in the run's folder; returns its name."""
        name = f"{folder}/run_manifest.json"
        storage_write_bytes(storage, name, json.dumps(manifest, indent=2, default=str).encode("utf-8"))
        return name

    def _no_api(self, *args, **kwargs):
        raise ProviderError("the dry-run provider calls no API", code="dry_run")

    upload_file = create_job = find_job = retrieve_job = cancel_job = list_events = list_checkpoints = _no_api
    result_file_content = file_exists = _no_api

    def list_jobs(self, *, limit: int | None = None):
        return []
