"""Errors of the hub layer: each message is one line saying what is wrong and what to do.

`USER_ERRORS` joins them with the user errors of the layers below (store, ensembling), so a
front end (the CLI) catches every "bad input" failure with one clause and imports only `hub`.
The two lower layers are siblings that import neither each other nor `hub`, so their error
roots stay their own.
"""

from ensembling.errors import EnsemblingError
from store.errors import StoreError


class HubError(Exception):
    """A user-facing failure in the hub layer (bad input, missing file, mismatch)."""


class DatasetError(HubError):
    """A dataset file or task card that cannot be read."""


class ModuleFolderError(HubError):
    """A module folder that is missing, unreadable, inconsistent or unsafe."""


class BaseModelMismatch(HubError):
    """A module that does not fit the base model it is declared for."""


USER_ERRORS: tuple[type[Exception], ...] = (HubError, StoreError, EnsemblingError)
