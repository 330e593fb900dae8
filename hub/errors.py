"""Errors of the hub layer: each message is one line saying what is wrong and what to do."""


class HubError(Exception):
    """A user-facing failure in the hub layer (bad input, missing file, mismatch)."""


class DatasetError(HubError):
    """A dataset file or task card that cannot be read."""


class ModuleFolderError(HubError):
    """A module folder that is missing, unreadable, inconsistent or unsafe."""


class BaseModelMismatch(HubError):
    """A module that does not fit the base model it is declared for."""
