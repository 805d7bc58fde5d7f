"""Admin screens of the training side, one module per subject.

The "Estimate" action on curation's drawing list is cross-app glue: it lives in gestima/admin_glue.py.
"""

from finetune.admin import (  # noqa: F401
    api_tokens,
    endpoints,
    estimates,
    evalresults,
    evalruns,
    fallbacks,
    registry,
    runs,
)
