"""The risk tick is a worker task on the beat schedule (read without importing the worker app:
creating its Celery app in-process would re-bind every shared task of the other tests)."""

import ast

from qilian.kit.settings import REPO_ROOT


def test_the_risk_tick_is_a_worker_task_on_the_beat_schedule():
    tree = ast.parse((REPO_ROOT / "services" / "worker" / "app.py").read_text())
    modules = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "TASK_MODULES" for t in node.targets)
    )
    assert "services.api.risk.tasks" in modules
    scheduled = {
        ast.literal_eval(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values, strict=True)
        if isinstance(key, ast.Constant) and key.value == "task"
    }
    assert "risk.tick" in scheduled
    source = (REPO_ROOT / "services" / "api" / "risk" / "tasks.py").read_text()
    assert '@task("risk.tick")' in source
