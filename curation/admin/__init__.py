"""Admin screens of the data side, one module per subject."""

from curation.admin import builds, datasets, drawings, examples, records  # noqa: F401
