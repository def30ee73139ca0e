"""A thin shim kept for code written before tasks became data: use :mod:`rose.tasks` and :mod:`rose.languages`."""

from __future__ import annotations

from rose.languages import STUDY_LANGUAGES, Language, get_language
from rose.tasks import Task, builtin_tasks, check_label, get_task, label_description

__all__ = ["Language", "Task", "get_language", "get_task", "check_label", "label_description", "STUDY_LANGUAGES",
           "builtin_tasks"]  # fmt: skip
