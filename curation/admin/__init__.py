"""Admin screens of the data side, one module per subject."""
from curation.admin import examples  # noqa: F401
from curation.admin import records  # noqa: F401
from curation.admin import datasets  # noqa: F401
from curation.admin import drawings  # noqa: F401
