"""Admin screens of the training side, one module per subject."""
from finetune.admin import runs  # noqa: F401,E402  (training runs)
from finetune.admin import evals  # noqa: F401,E402  (evaluation, registry, estimates)
