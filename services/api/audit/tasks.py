"""Beat task: checkpoint the audit chain's head for anchoring."""

from __future__ import annotations

from qilian.kit import db
from qilian.kit.tasks import run_async, task
from services.api.audit import checkpoints


async def _checkpoint() -> int | None:
    async with db.transaction() as session:
        row = await checkpoints.checkpoint(session)
        return row.audit_seq if row else None


@task("audit.checkpoint")
def checkpoint() -> int | None:
    """Returns the audit seq checkpointed, or None when the head did not move."""
    return run_async(_checkpoint())
