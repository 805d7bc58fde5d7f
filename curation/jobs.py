"""RQ entry points of the data side: thin wrappers that load rows by id and call services."""


# --- dataset version export (default queue) ---------------------------------------------------

def dataset_version_export_job(version_id: int, fmt: str = "openai"):
    """Export a dataset version; a re-run finds the version claimed or done and returns."""
    from curation.services.exports import dataset_version_export_run

    version = dataset_version_export_run(version_id=version_id, fmt=fmt)
    return version.export_dir if version else None


def dataset_version_export_job_failed(job, connection, exc_type, exc_value, tb):
    """on_failure hook: the error goes on the version (covers timeouts, where the job's own except never runs)."""
    from curation.services.exports import dataset_version_export_fail

    dataset_version_export_fail(version_id=job.args[0], error=f"{exc_type.__name__}: {exc_value}")
