"""A simulated StepFlow Monitor service, for ``--demo``, tests and benchmarks.

Standard library only. :mod:`stepflow_top.demo.writer` holds :func:`~.writer.run` (a live
writer), :func:`~.writer.populate` (a bulk-built store) and the command line
``python -m stepflow_top.demo.writer DIR``. The submodule is not imported here, so that
running it with ``-m`` does not import it twice.
"""
