"""The registry's jobs are wired: the consumer of ``financing.registry`` is the task the outbox
names, the worker loads the module and beat runs the tick every second."""

from __future__ import annotations

import ast
from pathlib import Path

from qilian.kit import outbox
from services.ledger.registry import service, tasks

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_the_consumer_is_the_task_the_outbox_names_for_the_topic():
    assert tasks.accept_operation.name == outbox.CONSUMERS[service.REQUEST_TOPIC]
    assert outbox.CONSUMERS[service.RESULT_TOPIC] == "financing.apply_registry_result"


def test_the_worker_loads_the_module_and_beat_ticks_every_second():
    # read the worker's module without importing it (its Celery app would re-bind shared tasks)
    tree = ast.parse((REPO_ROOT / "services" / "worker" / "app.py").read_text())
    modules = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "TASK_MODULES" for t in node.targets)
    )
    assert "services.ledger.registry.tasks" in modules
    entries = [
        {
            ast.literal_eval(k): v
            for k, v in zip(node.keys, node.values, strict=True)
            if isinstance(k, ast.Constant)
        }
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
    ]
    (entry,) = [
        e for e in entries if "task" in e and ast.literal_eval(e["task"]) == tasks.TICK_TASK
    ]
    assert ast.literal_eval(entry["schedule"]) == 1.0
