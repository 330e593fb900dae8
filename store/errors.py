"""Errors of the catalog: one line saying what is wrong and what to do."""


class StoreError(Exception):
    """A user-facing failure of the registry (database, blobs, indexes)."""


class NotFound(StoreError):
    """An id that names nothing in the registry."""


class BlobCorrupt(StoreError):
    """A blob whose bytes no longer hash to its address."""
