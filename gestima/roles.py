"""The two roles: Reviewer (review examples) and Manager (also datasets, runs, promotion).

Project-wide because a role spans both apps' permissions (curation's and finetune's); `roles_sync` applies them.
"""

from django.contrib.auth.models import Group, Permission

REVIEWER_PERMISSIONS = [
    ("curation", "view_drawing"),
    ("curation", "view_drawingpage"),
    ("curation", "view_groundtruth"),
    ("curation", "view_productionrecord"),
    ("curation", "view_task"),
    ("curation", "view_example"),
    ("curation", "change_example"),
    ("curation", "review_example"),
    ("curation", "view_examplechange"),
    # Evaluation (issue 6): experts read results and correct estimates (a correction is a pending example).
    ("finetune", "view_evalrun"),
    ("finetune", "view_evalresult"),
    ("finetune", "view_modelversion"),
    ("finetune", "view_estimate"),
    ("finetune", "correct_estimate"),
]

MANAGER_EXTRA_PERMISSIONS = [
    ("curation", "add_drawing"),
    ("curation", "change_drawing"),
    ("curation", "render_drawing"),
    ("curation", "add_productionrecord"),
    ("curation", "change_productionrecord"),
    ("curation", "change_groundtruth"),
    ("curation", "view_machine"),
    ("curation", "change_machine"),
    ("curation", "add_machine"),
    ("curation", "view_materialalias"),
    ("curation", "change_materialalias"),
    ("curation", "add_materialalias"),
    ("curation", "add_task"),
    ("curation", "change_task"),
    ("curation", "add_example"),
    ("curation", "view_basemodel"),
    ("curation", "change_basemodel"),
    ("curation", "view_dataset"),
    ("curation", "add_dataset"),
    ("curation", "change_dataset"),
    ("curation", "build_dataset"),
    ("curation", "export_dataset"),
    ("curation", "view_datasetversion"),
    ("finetune", "view_trainingrun"),
    ("finetune", "add_trainingrun"),
    ("finetune", "change_trainingrun"),
    ("finetune", "launch_run"),
    # Evaluation (issue 6): start/resume/compare evals, ask estimates, promote (Manager only).
    ("finetune", "add_evalrun"),
    ("finetune", "run_eval"),
    ("finetune", "promote_model"),
    ("finetune", "change_modelversion"),
    ("finetune", "add_estimate"),
]

# Permissions of models added after the roles migration (curation/migrations/0002_roles holds a frozen copy of
# the lists above and insists every listed permission exists when it runs): granted by the migration that adds
# the model and by roles_sync. A change to any list here reaches existing databases through roles_sync.
# Continuity: a task's fallback model answers when its active model is gone; OpenAI-compatible endpoints
# (vLLM, Ollama, Together, Azure AI) for evaluations and estimates.
REVIEWER_LATER_PERMISSIONS = [("finetune", "view_taskfallback")]
MANAGER_LATER_PERMISSIONS = [
    ("finetune", "add_taskfallback"),
    ("finetune", "change_taskfallback"),
    ("finetune", "delete_taskfallback"),
    ("finetune", "view_modelendpoint"),
    ("finetune", "add_modelendpoint"),
    ("finetune", "change_modelendpoint"),
    ("finetune", "delete_modelendpoint"),
    # Builds run in a worker; the build's page shows the progress.
    ("curation", "view_datasetbuild"),
]


def _permissions(pairs):
    found = []
    for app_label, codename in pairs:
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is not None:
            found.append(permission)
    return found


def roles_sync() -> dict[str, Group]:
    """Create or update the groups; permissions that do not exist (yet) are skipped."""
    reviewer, _ = Group.objects.get_or_create(name="Reviewer")
    manager, _ = Group.objects.get_or_create(name="Manager")
    reviewer_all = REVIEWER_PERMISSIONS + REVIEWER_LATER_PERMISSIONS
    reviewer.permissions.set(_permissions(reviewer_all))
    manager.permissions.set(_permissions(reviewer_all + MANAGER_EXTRA_PERMISSIONS + MANAGER_LATER_PERMISSIONS))
    return {"Reviewer": reviewer, "Manager": manager}
