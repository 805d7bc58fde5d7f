"""Taking back the work of killed workers: drawings left `rendering`; exports, builds, imports, estimates `running`;
training runs whose start (export, upload, job creation) lost its lease; the stored CSVs of finished imports that
a killed worker did not get to delete; the `.partial` files of dead processes under the exports and run folders.

`abandoned_jobs_recover()` runs when a worker starts and every JOB_RECOVER_INTERVAL_SECONDS inside each
worker (gestima.worker), not on RQ's scheduler: a killed worker keeps the scheduler lock for about a
minute and the next worker tries to take it only every 10 minutes.
"""

import logging
from pathlib import Path

from django.conf import settings

from gestima.leases import partial_files_remove, render_workdirs_remove

logger = logging.getLogger(__name__)


def abandoned_jobs_recover(*, sweep: bool = False) -> dict[str, dict[str, list[int]]]:
    """Queue again (or fail in words, after JOB_MAX_ATTEMPTS) every row whose job's lease ran out.

    With `sweep` (at worker start) also remove every render folder, and every `.partial` file of exports and run
    files, left by a dead process, whether or not a row still points at it. Returns what each recovery did.
    """
    from curation.services.dataset_builds import dataset_builds_abandoned_recover
    from curation.services.drawings import drawings_abandoned_recover
    from curation.services.export_queue import dataset_version_exports_abandoned_recover
    from curation.services.production_imports import production_import_files_sweep, production_imports_abandoned_recover
    from finetune.services.estimate_queue import estimates_abandoned_recover
    from finetune.services.run_start_leases import training_run_starts_abandoned_recover

    outcome = {}
    for name, recover in (
        ("drawings", drawings_abandoned_recover),
        ("exports", dataset_version_exports_abandoned_recover),
        ("builds", dataset_builds_abandoned_recover),
        ("imports", production_imports_abandoned_recover),
        ("import_files", production_import_files_sweep),
        ("estimates", estimates_abandoned_recover),
        # Last: giving up on a run looks its job up at the provider (once per run, after its last start died).
        ("run_starts", training_run_starts_abandoned_recover),
    ):
        try:
            outcome[name] = recover()
        except Exception:  # noqa: BLE001 - one failing recovery must not stop the other, nor the worker
            logger.exception("recovery of abandoned %s failed", name)
    if sweep:
        removed = render_workdirs_remove()
        for root, depth in partial_file_roots():
            removed += partial_files_remove(root, depth=depth)
        if removed:
            logger.warning("removed %s file(s) and folder(s) left by killed workers", len(removed))
    return outcome


def partial_file_roots() -> list[tuple[Path, int]]:
    """Where atomic files are written, with how deep: exports (EXPORTS_ROOT/<dataset>/<version>/) and run files
    (RUNS_ROOT/<run>/), and the exports and runs storages' folders when they are local but elsewhere."""
    from gestima.storage import exports_storage, runs_storage, storage_is_local

    roots = {Path(settings.EXPORTS_ROOT).resolve(): 3, Path(settings.RUNS_ROOT).resolve(): 2}
    for storage, depth in ((exports_storage(), 3), (runs_storage(), 2)):
        if storage_is_local(storage):
            roots.setdefault(Path(storage.path("")).resolve(), depth)
    return list(roots.items())
