"""Log files: what a script's terminal output becomes (colours kept, every other
sequence inert, carriage-return progress at its last state), how long lines are
bounded, and the safe open (links, FIFOs, devices, hard links, files outside the
store) proved on real files, with real SQLite locks where the hazard is losing them."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest
from stepflow_top.store import logs
from stepflow_top.store.ansi import PLAIN, AnsiReader, Rendition, apply_sgr
from stepflow_top.store.loglines import (
    MAX_LINE_CHARS,
    MAX_RAW_CHARS,
    Level,
    level_of,
    shape_lines,
)
from stepflow_top.store.logs import (
    NEVER_WRITTEN,
    NOT_ON_DISK_YET,
    LogRefused,
    open_log,
    read_log,
)

NIGHTLY = "9705a5e2-0bff-4e5d-8f54-4c5a2ee9e36b"


def read_line(raw: str) -> tuple[str, tuple]:
    return AnsiReader().line(raw)


# -- terminal output -------------------------------------------------------
def test_sgr_colours_become_spans_and_leave_no_escape():
    text, spans = read_line("\x1b[32mOK\x1b[0m and \x1b[1;38;5;196mred\x1b[22;48;2;1;2;3m bg\x1b[m.")
    assert text == "OK and red bg."
    assert spans == (
        (0, 2, Rendition(fg=2)),
        (7, 10, Rendition(fg=196, bold=True)),
        (10, 13, Rendition(fg=196, bg=(1, 2, 3))),
    )


def test_sgr_parameters_follow_ecma48_and_xterm():
    assert apply_sgr(PLAIN, "91;104") == Rendition(fg=9, bg=12)
    assert apply_sgr(PLAIN, "38:2::10:20:30") == Rendition(fg=(10, 20, 30))
    assert apply_sgr(PLAIN, "38:5:300") == Rendition(fg=255)  # clamped
    assert apply_sgr(PLAIN, "4:3;7;9") == Rendition(underline=True, reverse=True, strike=True)
    assert apply_sgr(Rendition(fg=1, bold=True, dim=True), "22;39") == PLAIN
    assert apply_sgr(Rendition(fg=1), "38;5") == Rendition(fg=None)  # malformed: no colour
    assert apply_sgr(PLAIN, "5;8;53") == PLAIN  # blink, conceal, overline: drawn plainly


def test_a_colour_carries_to_the_next_line_as_on_a_terminal():
    reader = AnsiReader()
    reader.line("\x1b[31mstarts red")
    assert reader.line("still red") == ("still red", ((0, 9, Rendition(fg=1)),))
    reader.line("\x1b[0m")
    assert reader.line("plain") == ("plain", ())


@pytest.mark.parametrize("raw, shown", [
    ("a\x1b[2Jb\x1b[10;5Hc\x1b[K", "abc"),  # screen clear, cursor move, erase
    ("o\x1b]52;c;SGVsbG8=\x07k", "ok"),  # OSC 52 clipboard write, BEL-terminated
    ("o\x1b]52;c;SGVsbG8=\x1b\\k", "ok"),  # … ST-terminated
    ("l\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\.", "llink."),  # OSC 8 hyperlink
    ("a\x1bPq#0;2;0;0;0\x1b\\b", "ab"),  # DCS (sixel)
    ("a\x1b_payload\x1b\\b", "ab"),  # APC
    ("\x1b[?1049halt screen\x1b[?25l", "alt screen"),  # private modes
    ("\x1b(Bcharset\x1b=", "charset"),  # other escapes
    ("a\x9b2Jb", "ab"),  # C1 CSI
    ("title\x1b]0;never ended", "title"),  # an OSC the script never ended
    ("cut\x1b[", "cut"),  # a CSI cut by the end of the line
])
def test_every_other_sequence_is_dropped_payload_and_all(raw, shown):
    text, spans = read_line(raw)
    assert text == shown and spans == ()


def test_control_characters_and_bidi_overrides_are_spelled_out():
    assert read_line("bell\x07 back\x08 nul\x00 del\x7f")[0] == "bell\\x07 back\\x08 nul\\x00 del\\x7f"
    assert read_line("x\u202ey\u2066z")[0] == "x\\u202ey\\u2066z"
    assert read_line("a\tb")[0] == "a       b"  # tabs to 8 columns


@pytest.mark.parametrize("raw, shown", [
    ("10%\r20%\r100%", "100%"),
    ("done\r", "done"),  # CRLF
    ("50%\r100%\r\x1b[K", "100%"),  # a last redraw that only erases
    ("long text\rshort", "short"),
])
def test_a_carriage_return_progress_line_shows_its_last_state(raw, shown):
    assert read_line(raw)[0] == shown


def test_colours_set_in_an_overwritten_state_still_apply():
    text, spans = read_line("\x1b[36m10%\r20%\r100%\x1b[0m done")
    assert text == "100% done" and spans == ((0, 4, Rendition(fg=6)),)


# -- lines as shown --------------------------------------------------------
def test_the_service_timestamp_is_kept_apart():
    line, bare = shape_lines(["[2026-11-21T19:47:31.000351] \x1b[1mhello\x1b[0m", "[t] more"])
    assert line.stamp == "[2026-11-21T19:47:31.000351] " and line.text == "hello"
    assert line.plain() == "[2026-11-21T19:47:31.000351] hello" and line.plain(False) == "hello"
    assert bare.stamp == "" and bare.text == "[t] more"


@pytest.mark.parametrize("text, level", [
    ("ERROR: Could not open requirements file", Level.ERROR),
    ("STEP_ERROR:build failed", Level.ERROR),
    ("Traceback (most recent call last):", Level.ERROR),
    ("tests FAILED", Level.ERROR),
    ("WARNING: deprecated API", Level.WARNING),
    ("warn: disk almost full; then an error", Level.ERROR),
    ("0 errors, failover ready, warned nobody", Level.NONE),
])
def test_error_and_warning_lines_are_told_by_their_words(text, level):
    assert level_of(text) == level


def test_a_long_line_keeps_its_start_and_says_it_is_cut():
    line, = shape_lines(["\x1b[32m" + "a" * (MAX_LINE_CHARS + 500) + "\x1b[0m"])
    assert len(line.text) == MAX_LINE_CHARS and line.cut_after and not line.cut_before
    assert line.spans == ((0, MAX_LINE_CHARS, Rendition(fg=2)),)


def test_a_line_cut_before_the_window_keeps_its_end():
    line, after = shape_lines(["x" * (3 * MAX_LINE_CHARS) + "THE END", "next"], first_cut=True)
    assert line.text.endswith("THE END") and len(line.text) == MAX_LINE_CHARS
    assert line.cut_before and not after.cut_before


def test_a_huge_progress_line_shows_its_last_state_from_bounded_work():
    progress = "".join(f"\r{i / 1000:.1%}" for i in range(200_000)) + "\rdone"
    assert len(progress) > 10 * MAX_RAW_CHARS
    line, = shape_lines([progress])
    assert line.text == "done" and not line.cut_before


def test_a_huge_line_is_read_from_its_start_only():
    line, = shape_lines(["start " + "\x1b[31mx\x1b[0m" * 500_000])
    assert line.text.startswith("start x") and line.cut_after
    assert len(line.text) <= MAX_RAW_CHARS


# -- reading a file --------------------------------------------------------
@pytest.fixture
def folder(fixture_store: Path) -> Path:
    """An execution folder of a copied store (its logs are the real service's)."""
    return fixture_store / "executions" / NIGHTLY


def log_in(folder: Path) -> Path:
    return folder / "step_9_planted.log"


def test_a_log_five_megabytes_on_one_line_shows_the_end_of_that_line(folder):
    log = log_in(folder)
    log.write_bytes(b"[2026-11-21T19:47:31.000351] " + b"x" * 5_000_000 + b" the end\n")
    read = read_log(log, executions_dir=folder.parent)
    assert read.missing is None and read.first_cut and len(read.raw) == 1
    line, = read.shaped
    assert line.text.endswith("x the end") and line.cut_before
    assert read.skipped_bytes + logs.DEFAULT_MAX_BYTES >= read.size


def test_a_window_cut_inside_a_character_starts_at_the_next_one(folder):
    log = log_in(folder)
    log.write_bytes("é".encode() * 100)  # two bytes each, no newline
    read = read_log(log, executions_dir=folder.parent, max_bytes=51)
    assert read.raw == ("é" * 25,) and read.first_cut


def test_a_missing_file_says_whether_it_may_still_come(folder):
    assert read_log(log_in(folder), executions_dir=folder.parent).missing == NOT_ON_DISK_YET
    ended = read_log(log_in(folder), executions_dir=folder.parent, ended=True).missing
    assert NEVER_WRITTEN in ended and "yet" not in ended


def test_a_symbolic_link_to_a_secret_is_not_followed(folder, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:SECRET-HASH:19000::::::\n")
    log_in(folder).symlink_to(secret)
    read = read_log(log_in(folder), executions_dir=folder.parent)
    assert read.raw == () and "is a symbolic link" in read.missing
    assert "not followed" in read.missing and "SECRET" not in repr(read)


def test_dev_zero_behind_a_link_is_not_read(folder):
    log_in(folder).symlink_to("/dev/zero")
    read = read_log(log_in(folder), executions_dir=folder.parent)
    assert read.raw == () and "symbolic link (to /dev/zero)" in read.missing


def test_a_fifo_is_refused_at_once_instead_of_hanging(folder):
    os.mkfifo(log_in(folder))
    result: list = []
    reader = threading.Thread(target=lambda: result.append(
        read_log(log_in(folder), executions_dir=folder.parent)), daemon=True)
    reader.start()
    reader.join(timeout=10)  # the old open() blocked here for ever (no writer)
    assert result, "read_log blocked on a FIFO"
    assert result[0].missing == "step_9_planted.log is a FIFO, not a log file"


def test_a_folder_linked_outside_the_store_is_refused(fixture_store, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "step_0_x.log").write_text("not the store's\n")
    (fixture_store / "executions" / "linked").symlink_to(outside)
    read = read_log(fixture_store / "executions" / "linked" / "step_0_x.log",
                    executions_dir=fixture_store / "executions")
    assert read.raw == () and "outside the store's executions folder" in read.missing


def test_a_hard_link_is_refused(folder, tmp_path):
    other = folder / "step_8_other.log"
    other.write_text("two names\n")
    os.link(other, log_in(folder))
    read = read_log(log_in(folder), executions_dir=folder.parent)
    assert read.raw == () and "2 hard links" in read.missing


def sqlite_locks(path: Path) -> list[str]:
    """This process's fcntl locks on ``path``'s inode, from /proc/locks, without each
    line's ordinal (it moves as other processes take and drop locks)."""
    info = os.stat(path)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    with open("/proc/locks") as table:
        return [" ".join(fields[1:]) for fields in map(str.split, table)
                if fields[4] == str(os.getpid()) and fields[5] == device]


@pytest.fixture
def reader_holding_locks(fixture_store: Path):
    """A read-only SQLite connection of this process holding a read snapshot (and so
    fcntl locks on the database and its -shm), as the app's refresher does."""
    database = fixture_store / "database" / "stepflow.db"
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM executions").fetchall()
    held = sqlite_locks(database) + sqlite_locks(database.with_name("stepflow.db-shm"))
    assert held, "the connection holds no lock to lose"
    yield database, held
    conn.close()


def test_a_link_to_the_database_is_never_opened_so_no_lock_is_lost(folder, reader_holding_locks):
    database, held = reader_holding_locks
    for name, target in (("step_7_db.log", database),
                         ("step_8_shm.log", database.with_name("stepflow.db-shm"))):
        (folder / name).symlink_to(target)
        assert "symbolic link" in read_log(folder / name, executions_dir=folder.parent).missing
    os.link(database, log_in(folder))  # same file system: a hard link
    assert "hard links" in read_log(log_in(folder), executions_dir=folder.parent).missing
    assert sqlite_locks(database) + sqlite_locks(database.with_name("stepflow.db-shm")) == held


def test_a_swap_to_the_database_between_check_and_open_keeps_the_locks(
        folder, reader_holding_locks, monkeypatch):
    database, held = reader_holding_locks
    log = log_in(folder)
    log.write_text("an honest log\n")
    real_open = os.open

    def swap_then_open(path, flags, *args):
        # What a racing script does: after the checks, the log becomes the database.
        log.unlink()
        os.link(database, log)
        return real_open(path, flags, *args)

    monkeypatch.setattr(logs.os, "open", swap_then_open)
    with pytest.raises(LogRefused, match="became a file with 2 hard links"):
        open_log(log, executions_dir=folder.parent)
    assert sqlite_locks(database) + sqlite_locks(database.with_name("stepflow.db-shm")) == held


def test_open_log_gives_a_descriptor_of_the_checked_file(folder):
    log = next(folder.glob("step_0_*.log"))
    fd = open_log(log, executions_dir=folder.parent)
    try:
        assert os.read(fd, 100).startswith(b"[2026-11-21T19:55:36.849624] Setting up")
    finally:
        os.close(fd)
