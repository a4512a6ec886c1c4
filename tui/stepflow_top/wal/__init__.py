"""SQLite WAL health, with no StepFlow knowledge and only the standard library.

* :mod:`.format`: pure parsers for the ``-wal``, ``-shm`` and database headers.
* :mod:`.probe`: the probe subprocess that reads those files (the process holding SQLite
  connections must never open them, SQLITE_WAL.md §3) and :class:`~.probe.WalSample`.
* :mod:`.history`: checkpoint history inferred from samples, its persistence, warnings.
* :mod:`.integrity`: integrity checks on a private copy, never pinning a snapshot long.

Nothing is imported here: the probe child imports this package and must start fast.
"""
