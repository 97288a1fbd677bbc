"""One-shot jobs planned at a deadline from the database (codes, service levels, …)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from telegram.ext import JobQueue

from models.clock import as_aware


def run_by(
    job_queue: JobQueue | None,  # type: ignore[type-arg]
    callback: Callable[[Any], Coroutine[Any, Any, None]],
    name: str,
    deadline: datetime,
) -> None:
    """Make sure the job ``name`` runs no later than ``deadline``: one planned earlier stays,
    a later one is replaced (one job per duty, not one per deadline)."""
    if job_queue is None:
        return
    when = as_aware(deadline)
    jobs = job_queue.get_jobs_by_name(name)
    if any(job.next_t is not None and job.next_t <= when for job in jobs):
        return
    for job in jobs:
        job.schedule_removal()
    job_queue.run_once(callback, when=when, name=name)
