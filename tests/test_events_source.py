import json
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import ingest

from rib.errors import InputFileError

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
T0 = 1_700_000_000


def rows_of(out: Path) -> list[dict]:
    return pq.read_table(out / "micro_behaviors.parquet").to_pylist()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


TAOBAO_LIKE = [  # user, item, category, behavior, unix seconds
    (1, 100, 7, "pv", T0),
    (1, 100, 7, "cart", T0 + 5),
    (1, 200, 7, "pv", T0 + 30),
    (1, 300, 8, "pv", T0 + 100),
    # 2 hours later: a new session for user 1
    (1, 400, 8, "pv", T0 + 7300),
    (1, 500, 8, "buy", T0 + 7310),
    (2, 100, 7, "pv", T0 + 50),
    (2, 600, 9, "pv", T0 + 80),
]


def test_taobao_layout_sessions_cut_by_gap_and_dwell_derived(tmp_path):
    log = tmp_path / "UserBehavior.csv"
    log.write_text("".join(f"{u},{i},{c},{b},{t}\n" for u, i, c, b, t in TAOBAO_LIKE))

    report = ingest("events", [log], tmp_path / "out", EXAMPLES / "taobao.yaml")

    assert (report.read, report.kept, report.quarantined, report.sessions) == (8, 8, 0, 3)
    rows = rows_of(tmp_path / "out")
    sessions = {}
    for r in rows:
        sessions.setdefault(r["session_id"], []).append(r)
    assert sorted(sessions) == ["1#1", "1#2", "2#1"]
    first = sessions["1#1"]
    assert [r["sku"] for r in first] == ["100", "100", "200", "300"]
    assert [r["activity"] for r in first] == [1, 9, 1, 1]
    # Visit on 100 starts at T0, next visit (200) at T0+30: dwell 30 for both of its events.
    # 200: T0+30 -> T0+100 = 70. The last visit (300) has one event: observed dwell 0.
    assert [r["dwell_seconds"] for r in first] == [30.0, 30.0, 70.0, 0.0]
    assert [r["time_interval_seconds"] for r in first] == [5.0, 25.0, 70.0, None]
    assert [r["position"] for r in first] == [0, 1, 2, 3]
    assert [r["sku"] for r in sessions["1#2"]] == ["400", "500"]
    assert sessions["1#2"][0]["dwell_seconds"] == 10.0
    assert all(r["user_id"] == "1" for r in first)


def test_last_visit_dwell_is_its_observed_span(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(f"1,100,7,pv,{T0}\n1,200,7,pv,{T0 + 10}\n1,200,7,cart,{T0 + 25}\n1,200,7,buy,{T0 + 40}\n")
    ingest("events", [log], tmp_path / "out", EXAMPLES / "taobao.yaml")
    assert [r["dwell_seconds"] for r in rows_of(tmp_path / "out")] == [10.0, 30.0, 30.0, 30.0]


def test_rees46_layout_with_sessions_and_excluded_events(tmp_path):
    log = tmp_path / "2019-Oct.csv"
    log.write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,s-a\n"
        "2019-10-01 00:00:20 UTC,cart,44600062,2103807459595387724,,shiseido,35.79,541312140,s-a\n"
        "2019-10-01 00:01:00 UTC,view,3900821,2053013552326770905,appliances,aqua,33.20,541312140,s-a\n"
        "2019-10-01 00:01:30 UTC,remove_from_cart,44600062,2103807459595387724,,shiseido,35.79,541312140,s-a\n"
        "2019-10-01 00:02:00 UTC,purchase,3900821,2053013552326770905,appliances,aqua,33.20,541312140,s-a\n"
        "2019-10-01 00:00:05 UTC,view,17200506,2053013559792632471,furniture,,543.10,554748717,s-b\n"
        "2019-10-01 00:00:09 UTC,click,1307067,2053013558920217191,computers,lenovo,251.74,554748717,s-b\n"
    )

    report = ingest("events", [log], tmp_path / "out", EXAMPLES / "rees46.yaml")

    assert (report.read, report.kept, report.quarantined) == (7, 5, 2)
    assert report.reasons == {"excluded_event_type": 1, "unmapped_event_type": 1}
    quarantine = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert sorted(r["line_number"] for r in quarantine) == [5, 8]  # header is line 1
    rows = [r for r in rows_of(tmp_path / "out") if r["session_id"] == "s-a"]
    assert [(r["sku"], r["activity"]) for r in rows] == [
        ("44600062", 1),
        ("44600062", 9),
        ("3900821", 1),
        ("3900821", 10),
    ]
    assert [r["dwell_seconds"] for r in rows] == [60.0, 60.0, 60.0, 60.0]


def test_jsonl_and_parquet_logs_with_dwell_and_session_columns(tmp_path):
    config = write_config(
        tmp_path,
        "columns: {session: sid, item: item, event_type: kind, dwell: dwell, timestamp: ts}\n"
        "activity_map: {search_click: 5, spec: 7, cart: 9}\n",
    )
    events = [
        {"sid": "a", "item": "x", "kind": "search_click", "dwell": 12.5, "ts": "2026-01-01T10:00:00"},
        {"sid": "a", "item": "x", "kind": "spec", "dwell": 12.5, "ts": "2026-01-01T10:00:05"},
        {"sid": "a", "item": "y", "kind": "cart", "dwell": -1, "ts": "2026-01-01T10:00:09"},
        {"sid": "a", "item": "z", "kind": "cart", "dwell": 3, "ts": "not a time"},
    ]
    jsonl = tmp_path / "log.jsonl"
    jsonl.write_text("".join(json.dumps(e) + "\n" for e in events))
    parquet = tmp_path / "log2.parquet"
    pq.write_table(pa.Table.from_pylist([{**events[0], "sid": "b"}, {**events[1], "sid": "b"}]), parquet)

    report = ingest("events", [jsonl, parquet], tmp_path / "out", config)

    assert (report.read, report.kept, report.quarantined) == (6, 4, 2)
    assert report.reasons == {"negative_dwell": 1, "bad_timestamp": 1}
    assert report.per_file[str(jsonl)] == {"read": 4, "kept": 2, "quarantined": 2}
    rows = rows_of(tmp_path / "out")
    assert [(r["session_id"], r["activity"], r["dwell_seconds"]) for r in rows] == [
        ("a", 5, 12.5),
        ("a", 7, 12.5),
        ("b", 5, 12.5),
        ("b", 7, 12.5),
    ]


def test_required_column_absent_names_the_file_and_column(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("user,item,when\n1,2,3\n")
    config = write_config(
        tmp_path, "columns: {user: user, item: item, event_type: kind, timestamp: when}\nactivity_map: {view: 1}\n"
    )
    with pytest.raises(InputFileError, match=r"log\.csv.*'kind'.*absent"):
        ingest("events", [log], tmp_path / "out", config)
    assert not (tmp_path / "out" / "micro_behaviors.parquet").exists()


def test_a_parquet_log_with_a_damaged_page_stops_naming_the_file_and_writes_nothing(tmp_path):
    # The counts and the canonical table read the file side by side: whichever read meets the damaged
    # page, the ingest stops with the file's name, the other read is stopped, and nothing is published.
    n = 20_000
    log = tmp_path / "log.parquet"
    table = pa.table(
        {
            "user": [str(k // 50) for k in range(n)],
            "item": [f"item{k}" for k in range(n)],
            "kind": ["pv"] * n,
            "ts": [T0 + k for k in range(n)],
        }
    )
    pq.write_table(table, log, compression="none", use_dictionary=False)
    item = pq.ParquetFile(log).metadata.row_group(0).column(1)
    data = bytearray(log.read_bytes())
    middle = item.data_page_offset + item.total_compressed_size // 2
    data[middle : middle + 200] = b"\xff" * 200  # string lengths past the page's end
    log.write_bytes(bytes(data))
    config = write_config(
        tmp_path,
        "columns: {user: user, item: item, event_type: kind, timestamp: ts}\n"
        "timestamp_format: unix_s\nactivity_map: {pv: 1}\n",
    )
    with pytest.raises(InputFileError, match=r"log\.parquet: cannot be read"):
        ingest("events", [log], tmp_path / "out", config)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_config_without_session_or_user_is_rejected(tmp_path):
    config = write_config(tmp_path, "columns: {item: item, event_type: kind, timestamp: ts}\nactivity_map: {v: 1}\n")
    with pytest.raises(InputFileError, match=r"config\.yaml.*columns\.session"):
        ingest("events", [tmp_path / "whatever.csv"], tmp_path / "out", config)


REES46_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"


def rees46_line(i: int, event: str = "view") -> str:
    return f"2019-10-01 00:00:{i:02d} UTC,{event},{100 + i % 3},7,electronics.phone,acme,9.99,5,s{i // 4}\n"


def test_a_rees46_export_cut_off_mid_line_costs_one_line(tmp_path):
    log = tmp_path / "2019-Oct.csv"
    lines = [rees46_line(i) for i in range(10)]
    log.write_text(REES46_HEADER + "".join(lines) + lines[0][:23])  # copied while still being written
    report = ingest("events", [log], tmp_path / "out", EXAMPLES / "rees46.yaml")
    assert (report.read, report.kept, report.quarantined) == (11, 10, 1)
    (bad,) = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert bad["reason"] == "unparsable_line" and bad["line_number"] == 12 and bad["raw"] == lines[0][:23]
    assert "missing columns" in bad["detail"]


def test_damaged_csv_lines_are_quarantined_with_their_own_line_numbers(tmp_path):
    log = tmp_path / "2019-Oct.csv"
    body = [rees46_line(i) for i in range(8)]
    body[1] = body[1].rstrip("\n") + ",extra\n"  # a column too many: line 3
    body[3] = "\n"  # a blank line: line 5
    body[4] = body[4].replace(",s1", ",s\xff1")  # not UTF-8, in a column the config reads: line 6
    body[6] = body[6].replace("view", "teleport")  # readable, but an event type the config does not map: line 8
    log.write_bytes((REES46_HEADER + "".join(body)).encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"))
    report = ingest("events", [log], tmp_path / "out", EXAMPLES / "rees46.yaml")
    assert report.read == report.kept + report.quarantined == 8 and report.kept == 4
    quarantine = {
        r["line_number"]: r["reason"] for r in pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    }
    assert quarantine == {3: "unparsable_line", 5: "blank_line", 6: "unparsable_line", 8: "unmapped_event_type"}
    assert report.reasons == {"blank_line": 1, "unmapped_event_type": 1, "unparsable_line": 2}


def test_a_line_of_blanks_is_one_unparsable_line_and_an_empty_line_one_blank_line(tmp_path):
    """Every physical line counted once: the parser rejects a line of spaces, skips an empty one."""
    log = tmp_path / "2019-Oct.csv"
    body = [rees46_line(i) for i in range(6)]
    body[1], body[3] = "   \n", "\n"  # lines 3 and 5
    log.write_text(REES46_HEADER + "".join(body))
    report = ingest("events", [log], tmp_path / "out", EXAMPLES / "rees46.yaml")
    assert (report.read, report.kept) == (6, 4)
    quarantine = {
        r["line_number"]: r["reason"] for r in pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    }
    assert quarantine == {3: "unparsable_line", 5: "blank_line"}


def test_an_open_quote_costs_the_rest_of_the_file_unless_the_config_says_the_log_never_quotes(tmp_path):
    log = tmp_path / "2019-Oct.csv"
    body = [rees46_line(i) for i in range(6)]
    body[2] = body[2].replace(",acme,", ',"acme,')  # a quote opens a field and never closes
    log.write_text(REES46_HEADER + "".join(body))
    quoted = ingest("events", [log], tmp_path / "a", EXAMPLES / "rees46.yaml")
    assert quoted.kept == 2 and quoted.read == quoted.kept + quoted.quarantined  # lines 4..7 read as one record
    config = (EXAMPLES / "rees46.yaml").read_text() + "csv:\n  quote: ''\n"
    unquoted = ingest("events", [log], tmp_path / "b", write_config(tmp_path, config))
    assert (unquoted.read, unquoted.kept, unquoted.quarantined) == (6, 6, 0)


def test_a_view_only_log_in_the_diginetica_layout(tmp_path):
    log = tmp_path / "train-item-views.csv"
    log.write_text(
        "session_id;user_id;item_id;timeframe;eventdate\n"
        "1;;81766;526309;2016-05-09\n1;;31331;1031018;2016-05-09\n1;;32118;243569;2016-05-09\n"
        "2;;9654;75848;2016-05-09\n2;;33043;1112408;2016-05-09\n3;7;;1000;2016-05-10\n"
    )
    report = ingest("events", [log], tmp_path / "out", EXAMPLES / "diginetica.yaml")
    assert (report.read, report.kept, report.quarantined, report.sessions) == (6, 5, 1, 2)
    assert report.reasons == {"missing_item": 1}
    rows = rows_of(tmp_path / "out")
    assert {r["activity"] for r in rows} == {1}
    first = [r["sku"] for r in rows if r["session_id"] == "1"]
    assert first == ["32118", "81766", "31331"]  # ordered by timeframe, not by line
    assert [r["dwell_seconds"] for r in rows if r["session_id"] == "1"] == pytest.approx([282.74, 504.709, 0.0])


def test_a_log_without_event_type_needs_a_default_activity(tmp_path):
    config = write_config(tmp_path, "columns: {session: s, item: i, timestamp: t}\n")
    with pytest.raises(InputFileError, match="default_activity"):
        ingest("events", [tmp_path / "x.csv"], tmp_path / "out", config)


def test_json_lines_that_are_not_objects_are_quarantined(tmp_path):
    log = tmp_path / "events.jsonl"
    good = [json.dumps({"s": "a", "i": f"p{n}", "e": "view", "t": T0 + n}) for n in range(4)]
    log.write_text("\n".join([good[0], "[1, 2, 3]", good[1], "{not json", good[2], "", good[3]]) + "\n")
    config = write_config(
        tmp_path,
        "format: jsonl\ncolumns: {session: s, item: i, event_type: e, timestamp: t}\n"
        "timestamp_format: unix_s\nactivity_map: {view: 1}\n",
    )
    report = ingest("events", [log], tmp_path / "out", config)
    assert (report.read, report.kept, report.quarantined) == (7, 4, 3)
    quarantine = {
        r["line_number"]: r["reason"] for r in pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    }
    assert quarantine == {2: "unparsable_json", 4: "unparsable_json", 6: "blank_line"}


@pytest.mark.parametrize("chunk", [1, 2, 3, 1 << 24])
def test_the_empty_line_scan_reads_in_chunks_and_finds_an_empty_line_across_their_edges(tmp_path, chunk):
    """The byte scan that decides whether the exact blank-line pass runs: read in chunks (a mapped
    file would count whole in resident memory), with empty lines on a chunk's edge found too."""
    from rib.data.events import has_empty_line

    cases = {
        b"": False,
        b"\n": True,
        b"\r\n": True,
        b"a\nb\n": False,
        b"a\n\nb": True,
        b"a\n\r\nb": True,
        b"a\r\nb\r\n": False,
        b"a\nb": False,
    }
    for data, expected in cases.items():
        (tmp_path / "log.csv").write_bytes(data)
        assert has_empty_line(tmp_path / "log.csv", chunk) is expected, data


@pytest.mark.parametrize("chunk", [1, 2, 3, 1 << 24])
def test_the_line_count_gives_a_plain_csv_files_records_and_declines_a_lone_carriage_return(tmp_path, chunk):
    """The byte scan beside the copy that spares a clean CSV log its counting read: its lines but the
    header, CRLF counted once across a chunk's edge, a last line without its line break counted; a
    lone CR (a line break the count would miss) or a compressed file: no count, the log is read."""
    from rib.data.events import EventsConfig, _csv_records, _FileScan

    config = EventsConfig.load(EXAMPLES / "rees46.yaml")
    cases = {
        b"h\na\nb\n": 2,
        b"h\na\nb": 2,
        b"h\r\na\r\nb\r\n": 2,
        b"h\n": 0,
        b"h\ra\rb\r": None,
        b"h\na\r\rb\n": None,
    }
    for data, expected in cases.items():
        (tmp_path / "log.csv").write_bytes(data)
        scan = _FileScan(0, tmp_path / "log.csv", "csv", 2, "", "")
        assert _csv_records([scan], config, chunk) == (None if expected is None else [expected]), data
    (tmp_path / "log.csv.gz").write_bytes(b"")
    assert _csv_records([_FileScan(0, tmp_path / "log.csv.gz", "csv", 2, "", "")], config, chunk) is None


def test_a_quoted_line_break_makes_fewer_records_than_lines_and_every_record_is_still_counted(tmp_path):
    """A record over two lines: the table has fewer rows than the file has lines, so the ingest reads
    the file through the checks to count, and finds every record kept."""
    log = tmp_path / "2019-Oct.csv"
    body = [rees46_line(i) for i in range(6)]
    body[2] = body[2].replace(",electronics.phone,", ',"electronics\nphone",')
    log.write_text(REES46_HEADER + "".join(body))
    report = ingest("events", [log], tmp_path / "out", EXAMPLES / "rees46.yaml")
    assert (report.read, report.kept, report.quarantined) == (6, 6, 0)
    assert len(rows_of(tmp_path / "out")) == 6


def _reference_sessions(events: list[tuple], gap: float) -> dict[tuple, tuple]:
    """The rules of rib/data/events.py written out by hand, row by row: events (user, item, unix
    seconds, file, line) ordered per user by (time, file, line); a session ends where the gap to the
    next event exceeds `gap`; a visit is a run of one item in a session; its dwell runs from its
    first event to the next visit's first event, or (the session's last visit) to the session's last
    event. Returns (file, line) -> (session_id, position, dwell, seconds to the next event)."""
    out = {}
    for user in {e[0] for e in events}:
        mine = sorted((e for e in events if e[0] == user), key=lambda e: (e[2], e[3], e[4]))
        sessions = [[mine[0]]]
        for previous, event in pairwise(mine):
            if event[2] - previous[2] > gap:
                sessions.append([])
            sessions[-1].append(event)
        for number, session in enumerate(sessions, start=1):
            visits = [[session[0]]]
            for previous, event in pairwise(session):
                if event[1] != previous[1]:
                    visits.append([])
                visits[-1].append(event)
            position = 0
            for v, visit in enumerate(visits):
                end = visits[v + 1][0][2] if v + 1 < len(visits) else session[-1][2]
                for event in visit:
                    following = session[position + 1][2] - event[2] if position + 1 < len(session) else None
                    out[(event[3], event[4])] = (f"{user}#{number}", position, float(end - visit[0][2]), following)
                    position += 1
    return out


def test_sessions_visits_dwell_and_intervals_match_a_row_by_row_reference(tmp_path):
    """Random users in two files, with equal timestamps (ordered by file, then line), gaps on
    either side of the 30-minute cut and runs of one item: every row's session, position, dwell and
    interval as the rules say, and the table in (session_id, position) order."""
    import random

    rng = random.Random(7)
    files = [[], []]
    for user in range(1, 13):
        t = T0 + rng.randrange(0, 100)
        for _ in range(rng.randrange(1, 40)):
            t += rng.choice([0, 0, 1, 7, 60, 1799, 1800, 1801, 5000])  # ties and the cut's edges
            item = rng.choice([100, 100, 200, 300]) if rng.random() < 0.6 else rng.randrange(100, 110)
            files[rng.randrange(2)].append((user, item, t))
    for events in files:
        rng.shuffle(events)  # a log need not be in time order
    paths = []
    for index, events in enumerate(files):
        paths.append(tmp_path / f"part{index}.csv")
        paths[-1].write_text("".join(f"{u},{i},7,pv,{t}\n" for u, i, t in events))
    ingest("events", paths, tmp_path / "out", EXAMPLES / "taobao.yaml")

    events = [(str(u), str(i), t, f, line) for f, part in enumerate(files) for line, (u, i, t) in enumerate(part)]
    expected = _reference_sessions(events, gap=30 * 60)
    rows = rows_of(tmp_path / "out")
    assert len(rows) == len(events) > 150
    assert [(r["session_id"], r["position"]) for r in rows] == sorted((s, p) for s, p, _, _ in expected.values())
    by_session_position = {(s, p): (d, n) for s, p, d, n in expected.values()}
    for r in rows:
        assert (r["dwell_seconds"], r["time_interval_seconds"]) == by_session_position[(r["session_id"], r["position"])]
    assert len({r["session_id"] for r in rows}) > 20  # the draw has users with ten sessions and more
    assert any(r["session_id"].endswith("#10") for r in rows)
