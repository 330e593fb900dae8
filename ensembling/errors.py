"""Errors of the ensembling layer: one line saying what is wrong and what to do."""


class EnsemblingError(Exception):
    """A user-facing failure while scoring, weighting or composing modules."""
