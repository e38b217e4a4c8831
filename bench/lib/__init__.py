"""Shared code of the bench scripts: processes and /proc, servers, the load client, reports.

The scripts run as ``uv run python bench/<script>.py``, so ``bench/`` is on ``sys.path`` and this
package imports as ``lib``::

    from lib.load import FixedRequest, http_request, measure
    from lib.procs import cpu_seconds, free_port, rss_bytes
    from lib.report import Goal, add_standard_arguments, finish, run_main
    from lib.servers import running_server, server_env, throwaway_database

- ``procs``: free ports and everything read from ``/proc`` (CPU, threads, RSS, connections);
- ``servers``: our server (``idp serve``) and Better Auth, a throwaway PostgreSQL database, a
  Redis key prefix that is cleared afterwards;
- ``load``: one load client (raw HTTP/1.1 keep-alive connections on uvloop) and ``measure``;
- ``report``: percentiles, tables, goals, ``--json``/``--quick`` and the exit codes.
"""
