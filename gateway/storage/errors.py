"""The one error every store raises."""

from __future__ import annotations


class StorageError(RuntimeError):
    """The store could not be reached or answered an error."""
