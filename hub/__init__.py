"""The deltahub Python API: `Hub` and what touches models (loading, datasets, embeddings, training).

Names are imported on first use (PEP 562), so `import hub` and the CLI's verbs that touch no
model (list, show, rm, verify, gc, db, index) load no model library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Hub": "hub.api",
    "Dataset": "hub.datasets",
    "Example": "hub.datasets",
    "TaskCard": "hub.datasets",
    "from_records": "hub.datasets",
    "load_dataset": "hub.datasets",
    "HubError": "hub.errors",
    "USER_ERRORS": "hub.errors",
    "SearchHit": "hub.search",
    "ModuleRecord": "store.records",
    "NotFound": "store.errors",
    "NeedsUpgrade": "store.errors",
    "BrokenModule": "store.maintenance",
    "IndexFinding": "store.maintenance",
    "VerifyReport": "store.maintenance",
    "GcReport": "store.blobs",
    "TokenRecord": "store.tokens",
    "COMBINE_OPERATORS": "hub.strategies",
    "DEFAULT_COMBINE": "hub.strategies",
    "DEFAULT_STRATEGY": "hub.strategies",
    "NO_TRANSFER": "hub.strategies",
    "SCORE_EXAMPLES": "hub.transfer_options",
    "TransferOptions": "hub.transfer_options",
    "strategy_summaries": "hub.strategies",
}

if TYPE_CHECKING:
    from hub.api import Hub
    from hub.datasets import Dataset, Example, TaskCard, from_records, load_dataset
    from hub.errors import USER_ERRORS, HubError
    from hub.search import SearchHit
    from hub.strategies import COMBINE_OPERATORS, DEFAULT_COMBINE, DEFAULT_STRATEGY, NO_TRANSFER, strategy_summaries
    from hub.transfer_options import SCORE_EXAMPLES, TransferOptions
    from store.blobs import GcReport
    from store.errors import NeedsUpgrade, NotFound
    from store.maintenance import BrokenModule, IndexFinding, VerifyReport
    from store.records import ModuleRecord
    from store.tokens import TokenRecord


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "BrokenModule",
    "COMBINE_OPERATORS",
    "DEFAULT_COMBINE",
    "DEFAULT_STRATEGY",
    "Dataset",
    "Example",
    "GcReport",
    "Hub",
    "HubError",
    "IndexFinding",
    "ModuleRecord",
    "NO_TRANSFER",
    "NeedsUpgrade",
    "NotFound",
    "SCORE_EXAMPLES",
    "SearchHit",
    "TokenRecord",
    "TaskCard",
    "TransferOptions",
    "USER_ERRORS",
    "VerifyReport",
    "from_records",
    "load_dataset",
    "strategy_summaries",
]
