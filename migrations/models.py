"""Every table of every service, imported so that ``metadata`` knows them all (for Alembic)."""

from typing import Any

from qilian.kit import outbox  # noqa: F401
from qilian.kit.db import SCHEMAS, metadata
from services.api.audit import checkpoints as _audit_checkpoints  # noqa: F401
from services.api.audit import models as _audit  # noqa: F401
from services.api.auth import models as _auth  # noqa: F401
from services.api.financing import models as _financing  # noqa: F401
from services.api.invoices import models as _invoices  # noqa: F401
from services.api.organizations import models as _organizations  # noqa: F401
from services.api.receivables import models as _receivables  # noqa: F401
from services.api.risk import models as _risk  # noqa: F401
from services.api.webhooks import models as _webhooks  # noqa: F401
from services.ledger.anchoring import models as _anchoring  # noqa: F401
from services.ledger.deployments import models as _deployments  # noqa: F401
from services.ledger.ingest import models as _ingest  # noqa: F401
from services.ledger.registry import models as _registry  # noqa: F401

__all__ = ["SCHEMAS", "include_name", "metadata"]


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Compare only our schemas (not ``public`` or kombu's tables)."""
    if type_ == "schema":
        return name in SCHEMAS
    return not (type_ == "table" and name == "alembic_version")
