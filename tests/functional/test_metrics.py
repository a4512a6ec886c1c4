"""``--metrics`` and ``--metrics-textfile`` against real stores written by a service in
another process; the shipped alert rules under ``promtool test rules``; a real
Prometheus server (Debian's ``prometheus`` package) scraping the exporter."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import wait_for
from prometheus_client.parser import text_string_to_metric_families
from service_writer import ServiceWriter

MONITORING = Path(__file__).resolve().parents[2] / "tui" / "stepflow_top" / "monitoring"
STATUSES = ("running", "stalled", "lost", "completed", "failed", "cancelled", "unknown")


def needs(tool: str):
    return pytest.mark.skipif(
        shutil.which(tool) is None,
        reason=f"{tool} is not installed (Debian: apt-get install prometheus; .ci/run does)")


class Exporter:
    """``stepflow-top ARGS --metrics 127.0.0.1:0`` in its own process; ``port`` is the
    one it says it serves on (stderr's first line)."""

    def __init__(self, *args: str, timeout_s: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stepflow_top", *args, "--metrics", "127.0.0.1:0",
             "--refresh", "0.5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = _line(self.proc.stderr, timeout_s)
        found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        if not found:
            self.stop()
            pytest.fail(f"the exporter did not say where it serves: {line!r}")
        self.port = int(found.group(1))

    def text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            return r.read().decode("utf-8")

    def values(self) -> dict[tuple, float]:
        """``{(sample name, ((label, value), ...)): value}`` of one scrape."""
        return parse(self.text())

    def wait_up(self, store: str) -> None:
        """Until the store's first look is done (counters count what comes after)."""
        wait_for(lambda: value(self.values(), "stepflow_up", store=store) == 1.0)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def _line(stream, timeout_s: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout_s)
    return stream.readline() if ready else ""


def parse(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(values: dict, name: str, **labels: str) -> float | None:
    return values.get((name, tuple(sorted(labels.items()))))


def once_json(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "stepflow_top", *args, "--once", "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def expected(document: dict, store: str) -> dict[tuple, float]:
    """What ``--metrics`` must say of a store, from ``--once --json``'s document."""
    by_status = document["counts"]["by_status"]
    out = {("stepflow_executions", (("status", s), ("store", store))): float(by_status.get(s, 0))
           for s in STATUSES}
    attached = document["writer"]["attached"]
    if attached is not None:
        out[("stepflow_writer_attached", (("store", store),))] = float(attached)
    if document["writer"]["last_commit"] is not None:
        out[("stepflow_last_commit_timestamp_seconds", (("store", store),))] = float(
            document["writer"]["last_commit"])
    out[("stepflow_db_size_bytes", (("store", store),))] = float(document["database"]["size_bytes"])
    wal = document["wal"]
    out[("stepflow_wal_size_bytes", (("store", store),))] = float(wal["size_bytes"] or 0)
    out[("stepflow_wal_frames_pending", (("store", store),))] = float(wal["pending"] or 0)
    return out


def agree(exporter_values: dict, document: dict, store: str) -> dict:
    """The figures that differ ({key: (exported, expected)}); empty when all agree."""
    return {k: (exporter_values.get(k), v) for k, v in expected(document, store).items()
            if exporter_values.get(k) != v}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_a_day(service: ServiceWriter) -> None:
    """One run completed (two steps), one failed, one left running."""
    done = service.start("build")
    for marker in ("Compile", "Test"):
        step, _ = service.step(done, marker)
        service.cmd("complete_step", step)
    service.cmd("finish", done, "completed")
    failed = service.start("deploy")
    step, _ = service.step(failed, "Upload")
    service.cmd("fail_step", step, 1, "no route to host")
    service.cmd("finish", failed, "failed")
    running = service.start("nightly")
    service.step(running, "Fetch")


def test_metrics_equal_once_json_and_count_what_finished(service, tmp_path):
    root = str(tmp_path / "storage")
    exporter = Exporter(root)
    try:
        exporter.wait_up("storage")
        run_a_day(service)
        wait_for(lambda: value(exporter.values(), "stepflow_executions_finished_total",
                               store="storage", status="failed") == 1.0)
        wait_for(lambda: not agree(exporter.values(), once_json(root), "storage"))
        values = exporter.values()
        assert value(values, "stepflow_writer_attached", store="storage") == 1.0
        assert value(values, "stepflow_executions", store="storage", status="running") == 1.0
        assert value(values, "stepflow_executions_finished_total", store="storage",
                     status="completed") == 1.0
        assert value(values, "stepflow_execution_duration_seconds_count", store="storage",
                     status="completed") == 1.0
        assert value(values, "stepflow_execution_duration_seconds_count", store="storage",
                     status="failed") == 1.0
        assert value(values, "stepflow_step_duration_seconds_count", store="storage",
                     status="completed") == 2.0
        assert value(values, "stepflow_step_duration_seconds_count", store="storage",
                     status="failed") == 1.0
        assert value(values, "stepflow_build_info", version=__import__("stepflow_top").__version__)
        service.kill()  # the service crashes: the running run is lost, nothing attached
        wait_for(lambda: value(exporter.values(), "stepflow_executions", store="storage",
                               status="lost") == 1.0)
        wait_for(lambda: not agree(exporter.values(), once_json(root), "storage"))
        assert value(exporter.values(), "stepflow_executions_finished_total", store="storage",
                     status="lost") == 1.0
    finally:
        assert exporter.stop() == 0


@needs("promtool")
def test_the_live_exposition_passes_promtool_check_metrics(service, tmp_path):
    exporter = Exporter(str(tmp_path / "storage"))
    try:
        exporter.wait_up("storage")
        run_a_day(service)
        wait_for(lambda: value(exporter.values(), "stepflow_executions_finished_total",
                               store="storage", status="failed") == 1.0)
        text = exporter.text()
        check = subprocess.run(["promtool", "check", "metrics"], input=text,
                               capture_output=True, text=True)
        assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), (
            check.stdout + check.stderr)
    finally:
        exporter.stop()


def test_a_store_that_cannot_be_read_is_up_0_and_the_others_live(fixture_store, tmp_path):
    broken = tmp_path / "broken" / "database"
    broken.mkdir(parents=True)
    (broken / "stepflow.db").write_bytes(b"not a database" * 100)
    missing = tmp_path / "not-yet"
    exporter = Exporter(f"good={fixture_store}", f"broken={broken.parent}", f"later={missing}")
    try:
        values = wait_for(lambda: (lambda v: v if value(v, "stepflow_up", store="good") == 1.0
                                   and value(v, "stepflow_up", store="later") == 0.0
                                   else None)(exporter.values()))
        assert value(values, "stepflow_up", store="broken") == 0.0
        assert not agree(values, once_json(str(fixture_store)), "good")
        assert value(values, "stepflow_executions", store="broken", status="running") is None
        ServiceWriter(missing).close()  # the service creates the store: it is followed
        wait_for(lambda: value(exporter.values(), "stepflow_up", store="later") == 1.0)
    finally:
        exporter.stop()
    lines = exporter.proc.stderr.read().splitlines()
    assert any(line.startswith("stepflow-top: broken: ") for line in lines), lines


def test_integrity_and_every_metric_the_rules_and_dashboard_use(fixture_store):
    exporter = Exporter(str(fixture_store), "--integrity-every", "0.5")
    try:
        values = wait_for(lambda: (lambda v: v if value(v, "stepflow_integrity_ok",
                                                        store="storage") is not None
                                   else None)(exporter.values()))
        assert value(values, "stepflow_integrity_ok", store="storage") == 1.0
        names = {name for name, _ in values}
    finally:
        exporter.stop()
    dashboard = json.loads((MONITORING / "grafana_dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = (MONITORING / "alert_rules.yml").read_text()
    used = set(re.findall(r"\bstepflow_[a-z_]+", " ".join(exprs) + rules))
    # last_checkpoint appears once a checkpoint was seen: not in an idle fixture
    assert used - names <= {"stepflow_last_checkpoint_timestamp_seconds"}, used - names
    assert {p["type"] for p in dashboard["panels"]} <= {"stat", "timeseries"}


def test_textfile_is_written_whole_and_updated(service, tmp_path):
    out = tmp_path / "textfile"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "stepflow_top", str(tmp_path / "storage"),
                             "--metrics-textfile", str(out), "--refresh", "0.5"],
                            stderr=subprocess.PIPE, text=True)
    target = out / "stepflow.prom"
    try:
        wait_for(lambda: target.exists()
                 and value(parse(target.read_text()), "stepflow_up", store="storage") == 1.0)
        run_a_day(service)
        wait_for(lambda: value(parse(target.read_text()), "stepflow_executions_finished_total",
                               store="storage", status="completed") == 1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert os.listdir(out) == ["stepflow.prom"]  # no temporary file left behind


@pytest.mark.parametrize("args, said", [
    (["--metrics-textfile", "{tmp}/nowhere"], "is not a folder"),
    (["--metrics", "127.0.0.1:{busy}"], "cannot listen on 127.0.0.1:{busy}"),
    (["--metrics", "{tmp}"], "--metrics takes [HOST:]PORT"),
])
def test_errors_are_one_line_and_exit_2(fixture_store, tmp_path, args, said):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        fill = {"tmp": tmp_path, "busy": port}
        result = subprocess.run(
            [sys.executable, "-m", "stepflow_top", str(fixture_store),
             *(a.format(**fill) for a in args)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and said.format(**fill) in lines[0], result.stderr


def test_print_modes_print_the_shipped_files():
    for flag, name in (("--print-alert-rules", "alert_rules.yml"),
                       ("--print-grafana-dashboard", "grafana_dashboard.json")):
        out = subprocess.run([sys.executable, "-m", "stepflow_top", flag],
                             capture_output=True, text=True, check=True).stdout
        assert out == (MONITORING / name).read_text()


@needs("promtool")
def test_promtool_checks_and_unit_tests_every_shipped_alert(tmp_path):
    rules = (MONITORING / "alert_rules.yml").read_text()
    alerts = set(re.findall(r"- alert: (\w+)", rules))
    tests = (MONITORING / "alert_rules_test.yml").read_text()
    assert alerts == set(re.findall(r"alertname: (\w+)", tests))
    for name in alerts:  # each alert is expected to fire somewhere, not only to stay quiet
        assert re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels", tests), name
    check = subprocess.run(["promtool", "check", "rules", "alert_rules.yml"],
                           cwd=MONITORING, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(["promtool", "test", "rules", "alert_rules_test.yml"],
                          cwd=MONITORING, capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr


@needs("prometheus")
def test_a_real_prometheus_scrapes_the_same_values(service, tmp_path):
    root = str(tmp_path / "storage")
    exporter = Exporter(root)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    shutil.copy(MONITORING / "alert_rules.yml", tmp_path / "alert_rules.yml")
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [alert_rules.yml]\n"
        "scrape_configs:\n"
        "  - job_name: stepflow\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n")
    server = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(expr: str) -> dict[tuple, float] | None:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                answer = json.load(r)
        except OSError:
            return None  # not listening yet
        return {(m["metric"].pop("__name__"),
                 tuple(sorted((k, v) for k, v in m["metric"].items()
                              if k not in ("instance", "job")))): float(m["value"][1])
                for m in answer["data"]["result"]}

    try:
        exporter.wait_up("storage")
        run_a_day(service)

        def same() -> bool:
            got = query('{__name__=~"stepflow_.+"}')
            return bool(got) and not agree(got, once_json(root), "storage")

        wait_for(same, timeout=60)
        assert query('stepflow_executions_finished_total{status="failed"}') == {
            ("stepflow_executions_finished_total",
             (("status", "failed"), ("store", "storage"))): 1.0}
        assert query('up{job="stepflow"}') == {("up", ()): 1.0}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5) as r:
            groups = json.load(r)["data"]["groups"]
        assert {rule["health"] for g in groups for rule in g["rules"]} <= {"ok", "unknown"}
        assert len([rule for g in groups for rule in g["rules"]]) == 10
    finally:
        server.terminate()
        server.wait(timeout=30)
        exporter.stop()
