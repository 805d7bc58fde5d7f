"""Helpers the training-run tests share: launch a run and let a burst worker start it; sync until it ends."""

from finetune.services.run_launch import training_run_launch
from finetune.services.run_sync import training_run_sync


def launch(run, manager, run_worker, django_capture_on_commit_callbacks, **kwargs):
    """Launch as a Manager would (the job is enqueued on commit), then run the openai queue once."""
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_launch(run=run, user=manager, **kwargs)
    run_worker("openai")
    run.refresh_from_db()
    return run


def sync_until_done(run, limit=10):
    """Sync (each sync moves the stand-in's job one step) until the run ends, then once more."""
    for _ in range(limit):
        run = training_run_sync(run=run)
        if run.is_terminal:
            break
    return training_run_sync(run=run)
