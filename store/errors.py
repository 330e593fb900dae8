"""Errors of the store: each carries one line of plain facts (what is wrong, where).

Wording that names a command or an option of a front end (the CLI) belongs to that front end.
"""


class StoreError(Exception):
    """A user-facing failure of the registry (database, blobs, indexes)."""


class NotFound(StoreError):
    """A module id that names nothing in the registry."""

    def __init__(self, module_id: int) -> None:
        super().__init__(f"no module with id {module_id}")
        self.module_id = module_id


class NeedsUpgrade(StoreError):
    """A registry whose schema is behind this deltahub's, or not made yet: upgrading its database (creating it) is the fix."""


class DatabaseBusy(StoreError):
    """A transient conflict between writers (lock timeout, deadlock, serialization failure); a retry may succeed."""


class BlobCorrupt(StoreError):
    """A blob whose bytes no longer hash to its address."""


class UploadTooLarge(StoreError):
    """An upload over the registry server's --max-upload."""


class AccessDenied(StoreError):
    """A registry server refused the request's token: missing, unknown or revoked (401), or of too small a scope (403)."""


class InvalidName(StoreError):
    """A task or category name outside the rule of store.records.NAME_RULES."""
