"""A Dask client: on the cluster the user named (``--scheduler``, ``--scheduler-file`` or Dask's own
``DASK_SCHEDULER_ADDRESS``), else on a local cluster of this machine. The same code path either way: worker
processes with one thread each (detection holds the GIL; Dask supplies the parallelism).

Before any task: the connection is bounded in time, the client's and the workers' versions of Dask (and of
auditor) must agree, and every worker must find git; a failure says what to do and stops the run (exit 2).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from auditor.errors import UsageError
from auditor.signals import interrupts_deferred

if TYPE_CHECKING:
    from distributed import Client

CONNECT_SECONDS = 5
WORKER_WAIT_SECONDS = 30


def _distributed() -> Any:
    try:
        with interrupts_deferred():
            import distributed
    except ImportError:
        raise UsageError("corpus audits run on Dask distributed, which is not installed: pip install "
                         "'auditor[dask]'") from None
    return distributed


@contextlib.contextmanager
def connect(*, scheduler: str | None, scheduler_file: str | None, workers: int | None) -> Iterator[Client]:
    distributed = _distributed()
    from auditor import __version__
    from auditor.corpus.tasks import probe

    address = scheduler or (None if scheduler_file else os.environ.get("DASK_SCHEDULER_ADDRESS"))
    cluster = None
    where = address or scheduler_file
    try:
        if where:
            if scheduler_file and not os.path.isfile(scheduler_file):
                raise UsageError(f"{scheduler_file}: no such scheduler file; start one with `dask scheduler "
                                 f"--scheduler-file {scheduler_file}` or pass --scheduler ADDRESS.")
            client = distributed.Client(address, scheduler_file=scheduler_file, timeout=f"{CONNECT_SECONDS}s",
                                        set_as_default=False)
        else:
            cluster = distributed.LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                               processes=True, dashboard_address=None,
                                               silence_logs=logging.ERROR)
            client = distributed.Client(cluster, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise UsageError(f"cannot reach the Dask scheduler at {where} within {CONNECT_SECONDS} s ({e}); start one "
                         "(`dask scheduler` and `dask worker ADDRESS --nthreads 1`) or check the address.") from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
        except TimeoutError:
            raise UsageError(f"no Dask worker joined the scheduler at {where} within {WORKER_WAIT_SECONDS} s; "
                             "start one with `dask worker ADDRESS --nthreads 1`.") from None
        try:
            client.get_versions(check=True)
        except ValueError as e:
            raise UsageError(f"the Dask cluster's versions differ from this client's: {e}. Install the same "
                             "versions of dask and distributed (and auditor) on the client and every worker.") from None
        for worker, (version, git) in client.run(probe).items():
            if version != __version__:
                raise UsageError(f"Dask worker {worker} runs auditor {version}, this client {__version__}: install "
                                 "the same auditor on every worker.")
            if git is None:
                raise UsageError(f"Dask worker {worker} finds no git: install git on every worker.")
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=10)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=10)
