"""Corpus audits: many repositories in one run, on a Dask cluster (a local one by default).

``listing`` reads the corpus file; ``tasks`` is what a Dask worker runs (a repository scan, or a part of a big
one); ``cluster`` connects to Dask; ``run`` is the client: it submits the tasks, validates every candidate once for
the whole corpus, attributes, and is the one writer of the one store.
"""
