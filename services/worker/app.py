"""The Celery application: worker and beat for every service's background jobs.

Tasks that must not be lost are acknowledged late, rejected back to the queue when a worker dies,
and fetched one at a time. Messages are JSON. Each service declares its tasks in its own
``tasks.py`` with ``shared_task``; this app loads them by module name so no service imports
another. The outbox relay runs here, driven by beat.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_init, worker_process_init, worker_process_shutdown

from qilian.kit import broker
from qilian.kit.logging import configure_logging
from qilian.kit.settings import get_settings
from qilian.kit.tasks import reset_after_fork

TASK_MODULES = [
    "services.worker.relay",
    "services.ledger.ingest.tasks",
    "services.ledger.anchoring.tasks",
    "services.ledger.registry.tasks",
    "services.api.audit.tasks",
    "services.api.invoices.tasks",
    "services.api.receivables.tasks",
    "services.api.financing.tasks",
    "services.api.webhooks.tasks",
    "services.api.risk.tasks",
]


def create_celery() -> Celery:
    settings = get_settings()
    broker.register()  # the embedded broker's transport, safe for several processes
    app = Celery("qilian", broker=settings.broker_url, include=TASK_MODULES)
    app.conf.update(
        task_default_queue=settings.task_queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        # beat recovers from a broker outage (services/worker/beat.py)
        beat_scheduler="services.worker.beat:RecoveringScheduler",
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            "outbox-relay": {
                "task": "outbox.relay",
                "schedule": settings.relay_interval_seconds,
                "options": {"expires": max(settings.relay_interval_seconds * 5, 5.0)},
            },
            # ledger anchoring: records → batches → anchorRoot → finality (by name: the worker
            # imports no service; the intervals are the ledger's documented defaults)
            "ledger-anchoring": {
                "task": "ledger.anchoring.tick",
                "schedule": 1.0,
                "options": {"expires": 5.0},
            },
            # ledger FinancingRegistry operations: receipts, then the next pending operation
            "ledger-registry": {
                "task": "ledger.registry.tick",
                "schedule": 1.0,
                "options": {"expires": 5.0},
            },
            # the marketplace's timers: auctions close, offers expire, acceptances lapse,
            # financings are repaid or default — within about a second of their time
            "financing-tick": {
                "task": "financing.tick",
                "schedule": 1.0,
                "options": {"expires": 5.0},
            },
            "outbox-prune": {
                "task": "outbox.prune",
                "schedule": 3600.0,
                "options": {"expires": 3600.0},
            },
            "receivables-overdue": {
                "task": "receivables.mark_overdue",
                "schedule": 3600.0,
                "options": {"expires": 3600.0},
            },
            # webhook delivery: a pass every second; delivered messages pruned hourly
            "webhooks-dispatch": {
                "task": "webhooks.dispatch",
                "schedule": 1.0,
                "options": {"expires": 5.0},
            },
            "webhooks-prune": {
                "task": "webhooks.prune",
                "schedule": 3600.0,
                "options": {"expires": 3600.0},
            },
            # risk sharing: queued pool claims paid, fees reversed, early warnings evaluated
            "risk-tick": {
                "task": "risk.tick",
                "schedule": 60.0,
                "options": {"expires": 60.0},
            },
            "ledger-reconcile": {
                "task": "ledger.anchoring.reconcile",
                "schedule": settings.reconcile_interval_seconds,
                "options": {"expires": settings.reconcile_interval_seconds},
            },
            "ledger-registry-reconcile": {
                "task": "ledger.registry.reconcile",
                "schedule": settings.reconcile_interval_seconds,
                "options": {"expires": settings.reconcile_interval_seconds},
            },
        },
    )
    if settings.audit_checkpoint_seconds > 0:
        app.conf.beat_schedule["audit-checkpoint"] = {
            "task": "audit.checkpoint",
            "schedule": settings.audit_checkpoint_seconds,
            "options": {"expires": settings.audit_checkpoint_seconds},
        }
    return app


app = create_celery()


@setup_logging.connect
def _logging(**_: Any) -> None:
    settings = get_settings()
    configure_logging("worker", settings.log_level, settings.log_json)


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    reset_after_fork()


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    """Serve ``/metrics`` from the worker's main process (every pool process's counts)."""
    settings = get_settings()
    port = settings.worker_metrics_port
    if port is None:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=settings.worker_metrics_host, registry=registry)


@worker_process_shutdown.connect
def _pool_process_gone(pid: int | None = None, **_: Any) -> None:
    if pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
