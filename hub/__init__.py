"""The deltahub Python API: `Hub` and what touches models (loading, datasets, embeddings, training)."""

from hub.api import Hub
from hub.datasets import Dataset, Example, TaskCard, from_records, load_dataset
from hub.errors import USER_ERRORS, HubError
from hub.search import SearchHit
from store.catalog import ModuleRecord
from hub.transfer import DEFAULT_STRATEGY, NO_TRANSFER, strategy_summaries

__all__ = ["DEFAULT_STRATEGY", "NO_TRANSFER", "USER_ERRORS", "Dataset", "ModuleRecord", "Example", "Hub", "HubError", "SearchHit", "TaskCard", "from_records", "load_dataset", "strategy_summaries"]
