"""Detection: a repository's changes → each new blob once → pre-validators and matchers → Candidates.

``stage.detect`` runs the stage for one repository (the blob feed, counters, checkpoints); ``batch`` reads and
scans one batch of blob ids; ``pool`` runs batches in worker processes (one machine), ``inline`` in the calling
thread (a Dask task, whose daemonic worker may not start processes).
"""
