"""The deltahub Python API: `Hub` and what touches models (loading, datasets, embeddings, training)."""

from hub.api import Hub, SearchHit
from hub.datasets import Dataset, Example, TaskCard, from_records, load_dataset
from hub.errors import HubError
from hub.transfer import strategy_summaries

__all__ = ["Dataset", "Example", "Hub", "HubError", "SearchHit", "TaskCard", "from_records", "load_dataset", "strategy_summaries"]
