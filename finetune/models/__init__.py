"""The training side: runs and their remote state (runs.py); evaluations, registry, estimates (evals.py); API tokens
(api.py)."""

from finetune.models.evals import *  # noqa: F401,F403
from finetune.models.runs import *  # noqa: F401,F403
from finetune.models.api import *  # noqa: F401,F403
