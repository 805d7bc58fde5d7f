"""The training side: runs and their remote state (runs.py); evaluations, registry, estimates (evals.py)."""
from finetune.models.evals import *  # noqa: F401,F403
from finetune.models.runs import *  # noqa: F401,F403
