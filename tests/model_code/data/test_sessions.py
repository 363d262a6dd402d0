"""Grouping events into sessions locally: order, ties, the 200 latest items, the command line."""
import gzip
import json
import subprocess
import sys

from model_code.data.event_rules import ReadOptions
from model_code.data.event_table import read_event_codes
from model_code.data.sessions import MAX_ITEMS, group_sessions
from tests.support.session_events import (
    BAD_ROWS,
    EXPECTED,
    VISIT_COUNTS,
    VISIT_OPTIONS,
    VISIT_SESSIONS,
    write_run,
    write_visits,
)

OPTIONS = ReadOptions(max_bad_rows="5")


def test_sessions_follow_the_rules_of_the_hand_written_reference(tmp_path):
    events = read_event_codes(write_run(tmp_path / "run"), OPTIONS, lambda line: None, with_files=True)
    sessions = list(group_sessions(events))
    assert [s["session_id"] for s in sessions] == list(EXPECTED)  # order of first appearance
    assert {s["session_id"]: s["items"] for s in sessions} == EXPECTED
    assert events.attrs["skipped_rows"] == BAD_ROWS


def test_at_most_the_latest_items_are_kept(tmp_path):
    path = tmp_path / "e.tsv"
    path.write_text("SessionId\tItemId\tTime\n" + "".join(f"s\t{i}\t{t}\n" for i, t in zip("abcde", [5, 4, 3, 2, 1])))
    events = read_event_codes(path, with_files=True, log=lambda line: None)
    assert list(group_sessions(events, max_items=2)) == [{"session_id": "s", "items": ["b", "a"]}]
    assert MAX_ITEMS == 200


def test_command_writes_one_json_line_per_session(tmp_path):
    out = tmp_path / "sessions.jsonl"
    done = subprocess.run([sys.executable, "-m", "model_code.data.sessions", str(write_run(tmp_path / "run")),
                           "--out", str(out), "--max-bad-rows", "5"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{"session_id": k, "items": v} for k, v in EXPECTED.items()]
    assert "商品7" in lines[1]  # written as it is, not escaped
    assert "6 sessions from 220 events (5 rows skipped)" in done.stderr


def test_an_out_name_ending_in_gz_is_written_as_gzip(tmp_path):
    plain, packed = tmp_path / "sessions.jsonl", tmp_path / "sessions.jsonl.gz"
    for out in (plain, packed):
        done = subprocess.run([sys.executable, "-m", "model_code.data.sessions", str(write_run(tmp_path / "run")),
                               "--out", str(out), "--max-bad-rows", "5"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert packed.read_bytes()[:2] == b"\x1f\x8b"  # gzip's magic number
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run", "sessions.jsonl", "sessions.jsonl.gz"]


def test_command_fails_with_the_readers_report_beyond_the_bad_row_bound(tmp_path):
    out = tmp_path / "sessions.jsonl"
    done = subprocess.run([sys.executable, "-m", "model_code.data.sessions", str(write_run(tmp_path / "run")),
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "5 of 225 rows are bad" in done.stderr and "--max-bad-rows" in done.stderr
    assert not out.exists()


def test_reading_options_are_checked_by_name(tmp_path):
    done = subprocess.run([sys.executable, "-m", "model_code.data.sessions", "x", "--out", "y", "--time-format", "%Q"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "--time-format" in done.stderr and "'%Q'" in done.stderr


def test_a_visitor_log_is_split_by_inactivity_filtered_by_kind_and_collapsed(tmp_path):
    events = read_event_codes(write_visits(tmp_path / "run"), ReadOptions(**VISIT_OPTIONS), lambda line: None,
                              with_files=True)
    assert {s["session_id"]: s["items"] for s in group_sessions(events)} == VISIT_SESSIONS
    assert events.attrs["rows_read"] == VISIT_COUNTS["rows_read"]
    assert events.attrs["skipped_rows"] == {"missing item id": VISIT_COUNTS["bad_rows"]}
    for key in ("other_kinds", "repeats_collapsed", "sessions_split"):
        assert events.attrs[key] == VISIT_COUNTS[key], key


def test_without_a_gap_or_kinds_a_visitor_is_one_session_of_every_event(tmp_path):
    options = ReadOptions(**{**VISIT_OPTIONS, "session_gap": "off", "event_column": "none", "event_types": "all"})
    events = read_event_codes(write_visits(tmp_path / "run"), options, lambda line: None, with_files=True)
    sessions = {s["session_id"]: s["items"] for s in group_sessions(events)}
    assert sessions["v1"] == ["a", "a", "b", "b", "c", "c", "d", "b"]
    assert set(sessions) == {"v1", "v2", "v3", "v4"}
    assert events.attrs["repeats_collapsed"] == events.attrs["sessions_split"] == events.attrs["other_kinds"] == 0


def test_the_command_takes_the_gap_and_the_kinds(tmp_path):
    out = tmp_path / "sessions.jsonl"
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in VISIT_OPTIONS.items()]
    done = subprocess.run([sys.executable, "-m", "model_code.data.sessions", str(write_visits(tmp_path / "run")),
                           "--out", str(out), *flags], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["session_id"]: json.loads(line)["items"]
            for line in out.read_text(encoding="utf-8").splitlines()} == VISIT_SESSIONS


def test_the_command_reads_day_partitions_and_counts_a_stray_byte_as_one_bad_row(tmp_path):
    events = tmp_path / "events"
    for day, body in (("2026-11-29", b"s\ta\t1\ns\tb\xff\t2\ns\tc\t3\n"), ("2026-11-30", b"t\tcaf\xe9\t4\nt\td\t5\n")):
        (events / f"dt={day}").mkdir(parents=True)
        (events / f"dt={day}" / "part-0.tsv").write_bytes(b"SessionId\tItemId\tTime\n" + body)
    out = tmp_path / "sessions.jsonl"
    done = subprocess.run([sys.executable, "-m", "model_code.data.sessions", str(events), "--out", str(out),
                           "--max-bad-rows", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{events}: 2 files: dt=2026-11-29/part-0.tsv, dt=2026-11-30/part-0.tsv" in done.stderr
    assert f"{events / 'dt=2026-11-29' / 'part-0.tsv'} line 3, column 'ItemId': not text of the encoding" in done.stderr
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == [
        {"session_id": "s", "items": ["a", "c"]}, {"session_id": "t", "items": ["d"]}]
    latin = subprocess.run([sys.executable, "-m", "model_code.data.sessions", str(events / "dt=2026-11-30"), "--out",
                            str(out), "--encoding", "latin-1"], capture_output=True, text=True)
    assert latin.returncode == 0, latin.stderr
    assert json.loads(out.read_text(encoding="utf-8")) == {"session_id": "t", "items": ["café", "d"]}
