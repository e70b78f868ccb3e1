"""What the tests share (pip calls its equivalent tests/lib), imported as ``tests.helpers.<module>``:

- ``env``: the environment of every process the suite starts (git isolated from the machine);
- ``git``: ``GitRepo``, the one repository builder (real ``git``, one identity, one deterministic clock), ``run_git()``
  for a command on any repository, ``bulk_repo`` for large histories;
- ``pairs``: ``make_pair`` (random fake credentials) and ``snippet`` (the text that plants one);
- ``scan``: ``run_scan`` → ``Result`` (the CLI in a subprocess), ``start_scan`` / ``finish``, ``run_auditor``;
- ``reference``: the oracle of SPEC §4 (brute force over plain git);
- ``procs``: processes as /proc shows them, ``wait_for``, ``free_port``;
- ``stores``: a store as an older auditor left it (``make_schema_3``), for upgrade tests.
"""
