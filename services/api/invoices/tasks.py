"""Background jobs of invoice intake: processing a bulk import (``invoices.process_import``).

The API hands over the job's id after its transaction commits; the task is idempotent (a job that
is done returns at once, a half-done one resumes after its last committed chunk)."""

from __future__ import annotations

from functools import lru_cache

import structlog
from celery import Celery

from qilian.kit import broker
from qilian.kit.settings import Settings, get_settings
from qilian.kit.tasks import run_async, task
from services.api.invoices import imports
from services.api.invoices.settings import get_intake_settings

log = structlog.get_logger(__name__)

PROCESS_IMPORT = "invoices.process_import"


@task(PROCESS_IMPORT)
def process_import(import_id: str) -> str:
    """Process one bulk import to its end."""
    return run_async(imports.process(import_id, get_settings(), get_intake_settings()))


@lru_cache
def _producer(broker_url: str) -> Celery:
    broker.register()  # the embedded broker's transport, safe for several processes
    return Celery("qilian-api", broker=broker_url, set_as_current=False)


def dispatch(settings: Settings, import_id: str) -> None:
    """Send the job to the workers by task name (the api does not import the worker). A failure
    is logged: the job stays ``queued`` and submitting the same import again re-sends it."""
    try:
        _producer(settings.broker_url).send_task(
            PROCESS_IMPORT,
            args=[import_id],
            queue=settings.task_queue,
            retry=True,
            retry_policy={"max_retries": 2},
        )
    except Exception as exc:  # the broker is down: the job waits for a re-submission
        log.warning("invoice_import_dispatch_failed", import_id=import_id, error=repr(exc))
