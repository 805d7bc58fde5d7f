"""Admin screens of the data side, one module per subject."""
from curation.admin import examples  # noqa: F401
