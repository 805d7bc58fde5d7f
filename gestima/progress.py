"""Progress as a person reads it: a line of text and, when it can be known honestly, a percentage for the bar.

Each kind of work has one function that makes it (renders `curation.services.drawings.drawing_render_progress`,
exports `curation.services.export_queue.export_progress`, work rows `gestima.work.work_row_progress`, training runs
`finetune.services.run_counts.run_count`, eval runs `finetune.services.evals.eval_run_progress`); its own page,
its live JSON and the dashboard all show that one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    text: str
    percent: int | None  # None: no honest percentage, so no bar
