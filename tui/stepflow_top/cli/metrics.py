"""``--metrics [HOST:]PORT`` (serve ``/metrics`` for Prometheus), ``--metrics-textfile
DIR`` (write ``DIR/stepflow.prom`` for node_exporter's textfile collector), and
``--print-alert-rules`` / ``--print-grafana-dashboard`` (the files shipped in
``stepflow_top/monitoring``).

Each store is followed by its own change feed (``live.events.watched_feed``: one
refresher, one probe, one file watcher); the values are read from the feeds' state when
Prometheus scrapes (``live.metrics``). A store that cannot be read is exported as
``stepflow_up 0`` and looked at again every ``--refresh`` seconds while the others
stay live.

Default port 10101: Prometheus' "Default port allocations" wiki page
(github.com/prometheus/prometheus/wiki/Default-port-allocations) gives each exporter its
own number so that several run side by side on one host. Its 9100-9999 range has been
full since 2023 and new exporters are given numbers from 10000 up, in order (about 10049
by August 2026); 10101 lies past those, so no listed exporter collides with it. It is
not registered on the page yet.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from contextlib import aclosing
from importlib import resources
from pathlib import Path

from ..live.events import UNREADABLE, FeedOptions, watched_feed
from ..live.metrics import StoreMetrics, exporter_registry
from ..store.locate import StorePaths
from . import UsageError, fail

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 10101
DEFAULT_INTEGRITY_EVERY = 3600.0  # seconds: a quick_check copies the database
TEXTFILE = "stepflow.prom"
ALERT_RULES = "alert_rules.yml"
DASHBOARD = "grafana_dashboard.json"


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (``""``: the defaults; ``[::1]:PORT`` for IPv6) → (host, port).
    Raises :class:`UsageError`."""
    if not text:
        return DEFAULT_HOST, DEFAULT_PORT
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--metrics takes [HOST:]PORT, e.g. :{DEFAULT_PORT} or "
                         f"0.0.0.0:{DEFAULT_PORT}; {text!r} is not one")
    return host, int(port)


def shipped(name: str) -> str:
    """The text of a file shipped in ``stepflow_top/monitoring``."""
    return resources.files("stepflow_top.monitoring").joinpath(name).read_text("utf-8")


def run_print(mode: str) -> int:
    """``--print-alert-rules`` or ``--print-grafana-dashboard``: print the file; 0."""
    sys.stdout.write(shipped(ALERT_RULES if mode == "print_alert_rules" else DASHBOARD))
    return 0


def _options(args: argparse.Namespace) -> FeedOptions:
    every = DEFAULT_INTEGRITY_EVERY if args.integrity_every is None else args.integrity_every
    return FeedOptions(fallback=args.refresh or 5.0, poll=args.poll,
                       stall_after=args.stall_after, integrity_every=every,
                       writer_tz=args.writer_tz, follow_missing=True)


def run_metrics(stores: list[StorePaths], args: argparse.Namespace) -> int:
    """Serve ``/metrics`` until interrupted (SIGINT or SIGTERM: exit 0). Returns 2 with
    one line when the address cannot be listened on."""
    from prometheus_client import start_http_server

    try:
        host, port = parse_address(args.metrics)
    except UsageError as exc:
        return fail(str(exc))
    registry, watched = exporter_registry(stores)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        return fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose "
                    f"another address with --metrics HOST:PORT")
    shown = f"[{host}]" if ":" in host else host
    print(f"stepflow-top: serving metrics of {_named(stores)} on "
          f"http://{shown}:{server.server_port}/metrics", file=sys.stderr, flush=True)
    try:
        asyncio.run(_follow_all(watched, _options(args)))
    finally:
        server.shutdown()
        server.server_close()
    return 0


def run_textfile(stores: list[StorePaths], args: argparse.Namespace) -> int:
    """Write ``DIR/stepflow.prom`` after every look until interrupted. Returns 2 with one
    line when DIR is not a writable folder or a write fails."""
    from prometheus_client import write_to_textfile

    folder: Path = args.metrics_textfile
    if not folder.is_dir():
        return fail(f"--metrics-textfile: {folder} is not a folder (node_exporter's "
                    f"--collector.textfile.directory)")
    if not os.access(folder, os.W_OK | os.X_OK):
        return fail(f"--metrics-textfile: cannot write in {folder} (permission denied)")
    target = folder / TEXTFILE
    registry, watched = exporter_registry(stores)

    def write() -> None:
        # A temporary file in DIR renamed over the target: the collector never reads
        # half a file (prometheus_client.write_to_textfile).
        write_to_textfile(str(target), registry)

    for store in watched:
        store.state.on_look = write
    try:
        asyncio.run(_follow_all(watched, _options(args)))
    except OSError as exc:
        return fail(f"cannot write {target} ({exc.strerror or exc})")
    return 0


def _named(stores: list[StorePaths]) -> str:
    return ", ".join(paths.label for paths in stores)


async def _follow_all(watched: list[StoreMetrics], options: FeedOptions) -> None:
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main.cancel)
    tasks = [asyncio.create_task(_follow(store, options)) for store in watched]
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        pass
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        loop.remove_signal_handler(signal.SIGTERM)
    for result in results:
        if isinstance(result, Exception):
            raise result


async def _follow(store: StoreMetrics, options: FeedOptions) -> None:
    """Follow one store's feed for ever, counting its events; a store that cannot be
    read (at the start too: ``FeedOptions.follow_missing``) is said once on stderr while
    it stays so."""
    async with aclosing(watched_feed(store.paths, options, store.state)) as feed:
        async for event in feed:
            if event["type"] == UNREADABLE:
                _say(store, event["error"])
            store.observe([event])


def _say(store: StoreMetrics, error: str) -> None:
    print(f"stepflow-top: {store.paths.label}: {error} (exported as stepflow_up 0)",
          file=sys.stderr, flush=True)
