"""A simulated StepFlow Monitor service, for ``--demo``, tests and benchmarks.

Standard library only. :mod:`stepflow_top.demo.writer` holds the public entry points:
:func:`~.writer.run` (a live writer), :func:`~.writer.populate` (a bulk-built store) and
the command line ``python -m stepflow_top.demo.writer DIR``. The work is done in
:mod:`.store` (layout, schema, connection, saves), :mod:`.engine` (what the service keeps
in memory and saves on each marker), :mod:`.scripts` (the scripts), :mod:`.catalogue`
(how a run is planned), :mod:`.service` (the live writer), :mod:`.bulk` (the bulk build)
and :mod:`.marker` (the demo only writes to storage roots it created).
No submodule is imported here, so that running the writer with ``-m`` does not import it
twice.
"""
