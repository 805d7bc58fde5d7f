"""The job seams: jobs are sent only through gestima.queues (which waits for the commit), and finetune's
services name their jobs by dotted path, never importing finetune.jobs; every job takes ids only."""

import ast
import inspect
from pathlib import Path

from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parents[2]
ENQUEUE_CALLS = {"enqueue", "enqueue_call", "enqueue_at", "enqueue_in"}
# gestima.queues waits for the commit itself; the periodic schedules (enqueue_in) concern no row.
ALLOWED_TO_ENQUEUE = {"gestima/queues.py", "gestima/periodic.py"}
# RQ's on_failure signature: the job's own args carry the id.
FAILURE_HOOK = ["job", "connection"]


def _modules(*apps):
    for app in apps:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def test_only_gestima_queues_and_the_periodic_schedule_send_jobs():
    # With COMMIT_MODE "auto" a queue sends at once: an enqueue elsewhere could reach a worker before commit.
    offenders = [
        f"{name}:{node.lineno}"
        for name, tree in _modules("curation", "finetune", "gestima")
        if name not in ALLOWED_TO_ENQUEUE
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ENQUEUE_CALLS
    ]
    assert offenders == []


def _job_paths(tree):
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("finetune.jobs.")
    ]


def test_finetune_services_name_jobs_by_dotted_path_and_never_import_them():
    imports, paths = [], []
    for name, tree in _modules("finetune/services"):
        paths += _job_paths(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (
                node.module == "finetune.jobs"
                or (node.module == "finetune" and any(alias.name == "jobs" for alias in node.names))
            ):
                imports.append(f"{name}:{node.lineno}")
            if isinstance(node, ast.Import) and any(alias.name == "finetune.jobs" for alias in node.names):
                imports.append(f"{name}:{node.lineno}")
    assert imports == []
    assert len(paths) >= 4  # the run start and its hook, the eval job and its hook, the deployment wait
    for path in paths:
        assert callable(import_string(path)), path


def test_every_finetune_job_takes_ids_only():
    import finetune.jobs

    jobs = [
        func for func in vars(finetune.jobs).values() if inspect.isfunction(func) and func.__module__ == "finetune.jobs"
    ]
    assert jobs
    for func in jobs:
        params = list(inspect.signature(func).parameters)
        assert params[:2] == FAILURE_HOOK or all(p.endswith("_id") for p in params), (func.__name__, params)


def test_curation_services_never_import_jobs():
    imports = [
        f"{name}:{node.lineno}"
        for name, tree in _modules("curation/services")
        for node in ast.walk(tree)
        if (isinstance(node, ast.ImportFrom) and (node.module or "").endswith("jobs"))
        or (isinstance(node, ast.Import) and any(alias.name.endswith(".jobs") for alias in node.names))
    ]
    assert imports == []


def test_every_work_kind_names_a_job_and_a_failure_hook_that_exist():
    from curation.services.dataset_builds import BUILD
    from curation.services.production_imports import IMPORT
    from finetune.services.estimate_queue import ESTIMATE

    kinds = [BUILD, IMPORT, ESTIMATE]
    assert len({kind.job_id_prefix for kind in kinds}) == len({kind.model for kind in kinds}) == 3
    for kind in kinds:
        job, hook = import_string(kind.job), import_string(kind.failure_hook)
        assert all(p.endswith("_id") for p in inspect.signature(job).parameters), kind.job
        assert list(inspect.signature(hook).parameters)[:2] == FAILURE_HOOK, kind.failure_hook
        assert kind.job_id(7) == f"{kind.job_id_prefix}-7"
