"""Tests for course_lib.ml.data: sources, bad inputs, dtype normalisation, synthetic months.

Nothing here touches the internet: downloads go to a local http.server on
127.0.0.1, and every other test points TLC_URL at a closed local port.
Real-data tests use the read-only TLC files green_tripdata_2023-01/02.parquet
(COURSE_REAL_DATA_DIR, else ../shared/data beside the repository: the
``real_month_files`` fixture in conftest.py) and skip only when they are absent.
"""

from __future__ import annotations

import calendar
import datetime as dt
import http.server
import logging
import os
import signal
import socket
import threading
import time
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from course_lib.ml import data
from tests.helpers import ctrl_c_raises
from course_lib.ml.data import (
    GREEN_COLUMNS,
    DataError,
    load_month,
    load_parquet,
    load_taxi_month,
    make_synthetic_month,
    month_filename,
)

UNREACHABLE_URL = "http://127.0.0.1:9/{color}_tripdata_{year:04d}-{month:02d}.parquet"
# Read before the autouse fixture below points it at a closed local port.
MODULE_TLC_URL = data.TLC_URL
JAN = month_filename(2023, 1)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """No test may write into the repository's work/ folder or reach the internet."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "default-data"))
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.delenv("COURSE_DOWNLOAD_TIMEOUT", raising=False)
    monkeypatch.setattr(data, "TLC_URL", UNREACHABLE_URL)
    monkeypatch.setattr(data, "_UNREACHABLE", {})  # each test starts with downloads on


@pytest.fixture(scope="module")
def small_month() -> pd.DataFrame:
    """A 500-row slice of a synthetic month: a valid TLC-shaped frame, cheap to write, standing in for
    a real TLC file (no attrs: pandas would save them in the parquet, marking it synthetic)."""
    frame = make_synthetic_month(2023, 1).iloc[:500].reset_index(drop=True)
    frame.attrs = {}
    return frame


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------
# Names


def test_month_filename_and_url_follow_tlc_naming():
    assert month_filename(2023, 1) == "green_tripdata_2023-01.parquet"
    assert month_filename(2019, 12, "yellow") == "yellow_tripdata_2019-12.parquet"
    assert data.TLC_URL == UNREACHABLE_URL  # the autouse fixture is in effect


def test_tlc_url_is_the_tlcs_public_trip_data_address(tmp_path, monkeypatch):
    # Where TLC publishes the monthly files (nyc.gov "TLC Trip Record Data" links to this CDN).
    assert MODULE_TLC_URL == (
        "https://d37ci6vzurychx.cloudfront.net/trip-data/{color}_tripdata_{year:04d}-{month:02d}.parquet")
    monkeypatch.setattr(data, "TLC_URL", MODULE_TLC_URL)
    expected = "https://d37ci6vzurychx.cloudfront.net/trip-data/green_tripdata_2023-02.parquet"
    assert data.month_url(2023, 2) == expected
    # and the loader asks exactly that address (stopped before anything leaves the machine)
    asked = []

    def no_network(url, timeout):
        asked.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    with pytest.raises(DataError, match="download of " + expected.replace(".", r"\.") + " failed"):
        load_taxi_month(2023, 2, source="download", data_dir=tmp_path)
    assert asked == [expected]
    assert files_in(tmp_path) == []


def test_green_columns_are_the_twenty_tlc_columns_in_file_order():
    assert len(GREEN_COLUMNS) == 20
    assert list(GREEN_COLUMNS)[:3] == ["VendorID", "lpep_pickup_datetime", "lpep_dropoff_datetime"]
    assert GREEN_COLUMNS["PULocationID"] == "int64"
    assert GREEN_COLUMNS["passenger_count"] == "float64"


# ---------------------------------------------------------------------------
# Bad inputs


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"year": 2023, "month": 13}, ["month 13", "outside 1-12", "between 1 and 12"]),
        ({"year": 2023, "month": 0}, ["month 0", "outside 1-12"]),
        ({"year": 2013, "month": 7}, ["2013-07", "before", "2013-08"]),
        ({"year": dt.date.today().year + 1, "month": 1}, ["future", "already happened"]),
        ({"year": 2023, "month": "1"}, ["whole numbers", "load_taxi_month(2023, 1)"]),
        ({"year": 2023, "month": 1, "source": "web"}, ["'web'", "'auto'", "'file'", "'download'", "'synthetic'"]),
        ({"year": 2023, "month": 1, "color": "yellow"}, ["'yellow'", "not supported", "color='green'"]),
    ],
)
def test_bad_arguments_raise_data_error_naming_problem_and_fix(tmp_path, kwargs, words):
    with pytest.raises(DataError) as caught:
        load_taxi_month(data_dir=tmp_path, **kwargs)
    for word in words:
        assert word in str(caught.value)
    assert files_in(tmp_path) == []


def _month_after(day: dt.date) -> tuple[int, int]:
    return (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)


def test_the_months_run_from_2013_08_to_the_current_month_both_ends_included():
    today = dt.date.today()
    for year, month in [(2013, 8), (today.year, today.month)]:  # the first TLC green month, and this month
        frame = load_taxi_month(year, month, source="synthetic")
        assert frame.attrs["source"] == "synthetic"
        assert frame["lpep_pickup_datetime"].min() >= pd.Timestamp(year, month, 1)
    with pytest.raises(DataError, match=r"2013-07 is before TLC green-taxi data exists \(it starts 2013-08\)"):
        load_taxi_month(2013, 7, source="synthetic")
    year, month = _month_after(today)
    with pytest.raises(DataError, match=rf"{year:04d}-{month:02d} is in the future \(today is {today:%Y-%m}\)"):
        load_taxi_month(year, month, source="synthetic")


def test_data_error_is_a_value_error():
    with pytest.raises(ValueError):
        make_synthetic_month(2023, 13)


def test_missing_file_with_source_file_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(DataError) as caught:
        load_taxi_month(2023, 1, source="file", data_dir=tmp_path)
    message = str(caught.value)
    for word in [JAN, "not found", str(tmp_path), "COURSE_DATA_DIR", "source='auto'", "source='synthetic'"]:
        assert word in message


@pytest.mark.parametrize("source", ["file", "auto"])
def test_corrupt_file_names_the_path_and_suggests_deleting_it(tmp_path, source):
    corrupt = tmp_path / JAN
    corrupt.write_bytes(b"<html>this is an error page, not parquet</html>")
    with pytest.raises(DataError) as caught:
        load_taxi_month(2023, 1, source=source, data_dir=tmp_path)
    assert str(corrupt) in str(caught.value)
    assert "not a readable parquet" in str(caught.value)
    assert "delete it" in str(caught.value)


def test_missing_columns_are_listed(tmp_path, small_month):
    lacking = small_month.drop(columns=["PULocationID", "trip_distance"])
    write_parquet(lacking, tmp_path / JAN)
    with pytest.raises(DataError) as caught:
        load_taxi_month(2023, 1, source="file", data_dir=tmp_path)
    message = str(caught.value)
    assert "missing required columns" in message
    assert "PULocationID" in message and "trip_distance" in message
    assert "DOLocationID" not in message  # only the missing ones are listed


def test_null_zone_ids_are_rejected_with_a_fix(tmp_path, small_month):
    broken = small_month.astype({"PULocationID": "float64"})
    broken.loc[3, "PULocationID"] = np.nan
    path = write_parquet(broken, tmp_path / "broken.parquet")
    with pytest.raises(DataError, match="PULocationID has 1 missing values.*drop those rows"):
        load_parquet(path)


def test_download_failure_names_url_and_reason_and_leaves_nothing(tmp_path):
    folder = tmp_path / "data"
    with pytest.raises(DataError) as caught:
        load_taxi_month(2023, 1, source="download", data_dir=folder)
    message = str(caught.value)
    assert "http://127.0.0.1:9/green_tripdata_2023-01.parquet" in message
    assert "cannot reach the server" in message
    assert "source='synthetic'" in message
    assert files_in(folder) == []  # neither the month nor a .part temp file


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
@pytest.mark.parametrize("source", ["download", "auto"])
def test_bad_download_timeout_setting_is_explained(tmp_path, monkeypatch, value, source):
    monkeypatch.setenv("COURSE_DOWNLOAD_TIMEOUT", value)
    with pytest.raises(DataError, match=rf"COURSE_DOWNLOAD_TIMEOUT='{value}' is not allowed .* "
                                        r"must be a number of seconds > 0\. Fix: set it to e\.g\. 30, or unset it"):
        load_taxi_month(2023, 1, source=source, data_dir=tmp_path)
    assert files_in(tmp_path) == []


def test_a_data_folder_that_cannot_be_created_is_a_data_error_with_the_fix(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=r"The data folder .*a-file/data cannot be created or written .*"
                                        r"Fix: set COURSE_DATA_DIR \(or data_dir=\) to a folder you can write to"):
        load_taxi_month(2023, 1, source="download", data_dir=blocker / "data")


@pytest.mark.parametrize("spec", ["January", "2023/01", "2023-01-15", "trips.csv"])
def test_load_month_rejects_specs_that_are_neither_month_nor_parquet(spec):
    with pytest.raises(DataError) as caught:
        load_month(spec)
    assert "neither 'YYYY-MM' nor a path" in str(caught.value)
    assert "'2023-01'" in str(caught.value)


def test_load_month_rejects_a_missing_path_and_a_contradictory_source(tmp_path):
    with pytest.raises(DataError, match="no parquet file at"):
        load_month(str(tmp_path / "nope.parquet"))
    with pytest.raises(DataError, match="does not apply to a path"):
        load_month(str(tmp_path / "nope.parquet"), source="synthetic")


# ---------------------------------------------------------------------------
# Downloads from a local server


class _TLCStandIn(http.server.BaseHTTPRequestHandler):
    """Serves /good/<name> as parquet, /html/<name> as an error page, /short/<name> truncated,
    /stall/<name> as 200 bytes then nothing for 3 s."""

    payload = b""
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        type(self).requests.append(self.path)
        kind = self.path.split("/")[1]
        if kind == "good":
            body, declared = self.payload, len(self.payload)
        elif kind == "html":
            body = b"<html>AccessDenied</html>"
            declared = len(body)
        elif kind in ("short", "stall"):
            body, declared = self.payload[:200], len(self.payload)
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(body)
        if kind == "stall":  # the rest never comes (a dead connection): the client must time out
            self.wfile.flush()
            time.sleep(3)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def tlc_server(small_month, tmp_path_factory):
    served = write_parquet(small_month, tmp_path_factory.mktemp("served") / "month.parquet")
    _TLCStandIn.payload = served.read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TLCStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_lands_atomically_and_second_auto_call_uses_the_file(
    tmp_path, monkeypatch, tlc_server, small_month, capsys
):
    monkeypatch.setattr(data, "TLC_URL", tlc_server + "/good/{color}_tripdata_{year:04d}-{month:02d}.parquet")
    folder = tmp_path / "data"
    _TLCStandIn.requests.clear()

    downloaded = load_taxi_month(2023, 1, source="download", data_dir=folder)
    assert files_in(folder) == [JAN]
    assert downloaded.attrs == {"source": "download", "path": str(folder / JAN)}
    assert len(downloaded) == len(small_month)
    assert dict(downloaded.dtypes.astype(str)) == dict(small_month.dtypes.astype(str))
    assert "2023-01 green: downloaded" in capsys.readouterr().out

    again = load_taxi_month(2023, 1, data_dir=folder)
    assert again.attrs["source"] == "file"
    assert _TLCStandIn.requests == ["/good/green_tripdata_2023-01.parquet"]  # no second download
    pd.testing.assert_frame_equal(again, downloaded)


@pytest.mark.parametrize(("kind", "reason"), [("html", "not parquet"), ("short", "closed"), ("missing", "HTTP 404")])
def test_bad_downloads_are_rejected_and_leave_no_file(tmp_path, monkeypatch, tlc_server, kind, reason):
    monkeypatch.setattr(data, "TLC_URL", tlc_server + f"/{kind}/" + "{color}_tripdata_{year:04d}-{month:02d}.parquet")
    folder = tmp_path / "data"
    with pytest.raises(DataError) as caught:
        load_taxi_month(2023, 1, source="download", data_dir=folder)
    assert reason in str(caught.value)
    assert files_in(folder) == []


def test_bad_download_does_not_replace_an_existing_file(tmp_path, monkeypatch, tlc_server, small_month):
    monkeypatch.setattr(data, "TLC_URL", tlc_server + "/html/{color}_tripdata_{year:04d}-{month:02d}.parquet")
    existing = write_parquet(small_month.iloc[:10], tmp_path / JAN)
    before = existing.read_bytes()
    with pytest.raises(DataError):
        load_taxi_month(2023, 1, source="download", data_dir=tmp_path)
    assert existing.read_bytes() == before
    assert files_in(tmp_path) == [JAN]


# Interrupted downloads: neither a partial file nor the target is left behind.


def _url(server, kind):
    return server + f"/{kind}/" + "{color}_tripdata_{year:04d}-{month:02d}.parquet"


@pytest.mark.parametrize("existing", [False, True])
def test_download_interrupted_mid_stream_leaves_no_partial_file(tmp_path, monkeypatch, tlc_server, small_month,
                                                               existing):
    """Ctrl-C while the bytes arrive: KeyboardInterrupt goes through, the half-written temp file goes away."""
    monkeypatch.setattr(data, "TLC_URL", _url(tlc_server, "good"))
    folder = tmp_path / "data"
    before = write_parquet(small_month.iloc[:10], folder / JAN).read_bytes() if existing else None
    seen_partial = []

    class InterruptedBar:  # stands in for tqdm: the first chunk is written, then Ctrl-C
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            seen_partial.extend(p.name for p in folder.iterdir() if ".tmp" in p.name and p.stat().st_size)
            raise KeyboardInterrupt

    monkeypatch.setattr(data, "tqdm", InterruptedBar)
    # "auto" must not turn Ctrl-C into a synthetic fallback (with a file present it would not download)
    for source in ("download",) if existing else ("download", "auto"):
        with pytest.raises(KeyboardInterrupt):
            load_taxi_month(2023, 1, source=source, data_dir=folder)
    assert seen_partial  # the interruption did hit a half-written file...
    if existing:
        assert files_in(folder) == [JAN] and (folder / JAN).read_bytes() == before  # ...the old file is intact
    else:
        assert files_in(folder) == []  # ...and neither it nor the target is left


@pytest.mark.parametrize("source", ["download", "auto"])
def test_download_that_stalls_times_out_and_leaves_nothing(tmp_path, monkeypatch, tlc_server, source, capsys):
    monkeypatch.setattr(data, "TLC_URL", _url(tlc_server, "stall"))
    monkeypatch.setenv("COURSE_DOWNLOAD_TIMEOUT", "0.5")
    folder = tmp_path / "data"
    if source == "download":
        with pytest.raises(DataError, match=r"no answer within 0\.5 s \(COURSE_DOWNLOAD_TIMEOUT\)"):
            load_taxi_month(2023, 1, source=source, data_dir=folder)
    else:
        assert load_taxi_month(2023, 1, source=source, data_dir=folder).attrs["source"] == "synthetic"
        assert "offline fallback: download failed: no answer within 0.5 s" in capsys.readouterr().out
    assert files_in(folder) == []


def test_ctrl_c_during_a_stalled_download_leaves_nothing(tmp_path, monkeypatch, tlc_server):
    """A real SIGINT (what Ctrl-C / the notebook's interrupt sends) while the download waits for bytes."""
    monkeypatch.setattr(data, "TLC_URL", _url(tlc_server, "stall"))
    monkeypatch.setenv("COURSE_DOWNLOAD_TIMEOUT", "30")
    folder = tmp_path / "data"
    interrupt = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    with ctrl_c_raises():  # also when pytest itself was started with SIGINT ignored (`make test &`)
        interrupt.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                load_taxi_month(2023, 1, source="download", data_dir=folder)
        finally:
            interrupt.cancel()
    assert files_in(folder) == []


# Offline once: a reason that retrying will not change stops the downloads of the process.


def _url_at(port: int) -> str:
    return f"http://127.0.0.1:{port}/" + "{color}_tripdata_{year:04d}-{month:02d}.parquet"


def test_a_refused_download_stops_the_downloads_of_the_process_and_says_so_once(tmp_path, monkeypatch, capsys):
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(data, "TLC_URL", _url_at(port))
    assert load_taxi_month(2023, 1, data_dir=tmp_path).attrs["source"] == "synthetic"
    said = capsys.readouterr().out
    assert said.count(f"Downloads from 127.0.0.1:{port} stop for this process") == 1
    assert "Connection refused" in said and "Set COURSE_OFFLINE=1 to skip the attempt" in said

    # Something listens there now, yet the process does not try again: no connection arrives.
    with socket.create_server(("127.0.0.1", port)) as listener:
        listener.setblocking(False)
        assert load_taxi_month(2023, 2, data_dir=tmp_path).attrs["source"] == "synthetic"
        with pytest.raises(BlockingIOError):
            listener.accept()
    said = capsys.readouterr().out
    assert f"download skipped: 127.0.0.1:{port} could not be reached earlier in this process" in said
    assert "stop for this process" not in said  # said once
    assert files_in(tmp_path) == []


def test_a_connection_attempt_that_gets_no_answer_stops_the_downloads_too(tmp_path, monkeypatch, capsys):
    """A firewall that drops packets: the connection attempt times out (here: a full accept queue,
    where Linux drops the SYN), and every later attempt would wait out the timeout again."""
    monkeypatch.setenv("COURSE_DOWNLOAD_TIMEOUT", "0.5")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = []
        try:
            for _ in range(8):  # fill the accept queue until a connection attempt gets no answer
                filler = socket.socket()
                fillers.append(filler)
                filler.settimeout(0.3)
                try:
                    filler.connect(listener.getsockname())
                except TimeoutError:
                    break
            else:
                pytest.fail("the accept queue never filled: this system answers every connection attempt")
            port = listener.getsockname()[1]
            monkeypatch.setattr(data, "TLC_URL", _url_at(port))
            attempts = []
            real_download = data._download
            monkeypatch.setattr(data, "_download", lambda *args: attempts.append(args) or real_download(*args))
            assert load_taxi_month(2023, 1, data_dir=tmp_path).attrs["source"] == "synthetic"
            assert load_taxi_month(2023, 2, data_dir=tmp_path).attrs["source"] == "synthetic"
        finally:
            for filler in fillers:
                filler.close()
    said = capsys.readouterr().out
    assert said.count(f"Downloads from 127.0.0.1:{port} stop for this process: cannot reach the server (timed out)") == 1
    assert "could not be reached earlier in this process" in said
    assert len(attempts) == 1  # the second month did not wait out another timeout


def test_a_slow_server_is_tried_again(tmp_path, monkeypatch, tlc_server, capsys):
    """A timeout while the bytes arrive, or an HTTP error, may pass: the next month tries again."""
    monkeypatch.setenv("COURSE_DOWNLOAD_TIMEOUT", "0.5")
    _TLCStandIn.requests.clear()
    for kind in ("stall", "missing", "stall"):
        monkeypatch.setattr(data, "TLC_URL", _url(tlc_server, kind))
        assert load_taxi_month(2023, 1, data_dir=tmp_path).attrs["source"] == "synthetic"
    assert [path.split("/")[1] for path in _TLCStandIn.requests] == ["stall", "missing", "stall"]
    assert "stop for this process" not in capsys.readouterr().out


# ---------------------------------------------------------------------------
# Source selection


def test_auto_uses_the_file_when_present(tmp_path, small_month, capsys, caplog):
    path = write_parquet(small_month, tmp_path / JAN)
    with caplog.at_level(logging.INFO, logger="course_lib.ml.data"):
        frame = load_taxi_month(2023, 1, data_dir=tmp_path)
    assert frame.attrs == {"source": "file", "path": str(path)}
    assert len(frame) == 500
    assert "2023-01 green: real TLC file" in capsys.readouterr().out
    assert any("real TLC file" in record.getMessage() for record in caplog.records)


def test_a_synthetic_month_saved_to_a_file_is_still_called_synthetic(tmp_path, capsys):
    # lesson 05 writes the months it loaded to parquet and uploads them; offline they are synthetic
    path = write_parquet(make_synthetic_month(2023, 1), tmp_path / JAN)
    frame = load_taxi_month(2023, 1, source="file", data_dir=tmp_path)
    assert frame.attrs == {"source": "synthetic", "path": str(path)}
    out = capsys.readouterr().out
    assert "2023-01 green: synthetic, " in out and "(a synthetic month saved as" in out
    assert "real TLC file" not in out
    assert load_month(path).attrs["source"] == "synthetic"
    assert "a synthetic month's parquet file" in capsys.readouterr().out


def test_data_dir_defaults_to_course_data_dir(tmp_path, monkeypatch, small_month):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "elsewhere"))
    write_parquet(small_month, tmp_path / "elsewhere" / JAN)
    assert load_taxi_month(2023, 1, source="file").attrs["path"] == str(tmp_path / "elsewhere" / JAN)


def test_auto_offline_falls_back_to_synthetic_without_trying_to_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")

    def no_download(*args, **kwargs):
        raise AssertionError("COURSE_OFFLINE=1 must skip the download")

    monkeypatch.setattr(data, "_download", no_download)
    frame = load_taxi_month(2023, 1, data_dir=tmp_path)
    assert frame.attrs == {"source": "synthetic", "path": None}
    assert "synthetic" in capsys.readouterr().out
    assert files_in(tmp_path) == []


def test_auto_falls_back_to_synthetic_when_the_download_fails(tmp_path, capsys):
    frame = load_taxi_month(2023, 1, data_dir=tmp_path)
    out = capsys.readouterr().out
    assert frame.attrs["source"] == "synthetic"
    assert "offline fallback: download failed: cannot reach the server" in out
    assert files_in(tmp_path) == []  # synthetic data is never saved as if it were real


def test_forced_synthetic_ignores_an_existing_file(tmp_path, small_month):
    write_parquet(small_month, tmp_path / JAN)
    assert load_taxi_month(2023, 1, source="synthetic", data_dir=tmp_path).attrs["source"] == "synthetic"


def test_load_month_dispatches_months_and_paths(tmp_path, small_month):
    path = write_parquet(small_month, tmp_path / "anything.parquet")
    by_path = load_month(str(path))
    assert by_path.attrs == {"source": "file", "path": str(path)}
    assert load_month(path).attrs["source"] == "file"  # Path objects too
    by_month = load_month("2023-02", source="synthetic")
    pd.testing.assert_frame_equal(by_month, make_synthetic_month(2023, 2))


def test_2023_02_style_types_are_normalised_to_the_canonical_dtypes(tmp_path, small_month):
    """TLC's 2023-02 file: int32 ids, int64 nullable columns, large_string flag, double ehail_fee."""
    as_feb = pa.Table.from_pandas(small_month, preserve_index=False)
    feb_types = {"VendorID": pa.int32(), "PULocationID": pa.int32(), "DOLocationID": pa.int32(),
                 "store_and_fwd_flag": pa.large_string(), "RatecodeID": pa.int64(),
                 "passenger_count": pa.int64(), "payment_type": pa.int64(), "trip_type": pa.int64()}
    schema = pa.schema([pa.field(f.name, feb_types.get(f.name, f.type)) for f in as_feb.schema])
    path = tmp_path / "feb_like.parquet"
    pq.write_table(as_feb.cast(schema), path)
    assert pq.read_schema(path).field("PULocationID").type == pa.int32()

    frame = load_parquet(path)
    assert dict(frame.dtypes.astype(str)) == {c: str(pd.Series(dtype=d).dtype) for c, d in GREEN_COLUMNS.items()}
    assert frame["passenger_count"].isna().sum() == small_month["passenger_count"].isna().sum()
    pd.testing.assert_frame_equal(frame, small_month)


# ---------------------------------------------------------------------------
# Synthetic months: shape and determinism


@pytest.fixture(scope="module")
def synthetic_jan() -> pd.DataFrame:
    return make_synthetic_month(2023, 1)


def canonical_dtypes() -> dict[str, str]:
    return {column: str(pd.Series(dtype=dtype).dtype) for column, dtype in GREEN_COLUMNS.items()}


def test_synthetic_is_deterministic_and_months_differ(synthetic_jan):
    pd.testing.assert_frame_equal(make_synthetic_month(2023, 1), synthetic_jan)
    february = make_synthetic_month(2023, 2)
    assert not february["trip_distance"].head(1000).equals(synthetic_jan["trip_distance"].head(1000))
    assert february["lpep_pickup_datetime"].dt.month.eq(2).all()


def test_synthetic_has_canonical_columns_rows_and_attrs(synthetic_jan):
    assert list(synthetic_jan.columns) == list(GREEN_COLUMNS)
    assert dict(synthetic_jan.dtypes.astype(str)) == canonical_dtypes()
    assert 65_000 <= len(synthetic_jan) <= 72_000
    assert synthetic_jan.attrs == {"source": "synthetic", "path": None}
    assert synthetic_jan["ehail_fee"].isna().all()


def test_synthetic_datetimes_fall_inside_the_month():
    for year, month in [(2023, 1), (2024, 2)]:  # 2024-02 has 29 days
        frame = make_synthetic_month(year, month)
        start = pd.Timestamp(year, month, 1)
        end = start + pd.offsets.MonthBegin(1)
        for column in ["lpep_pickup_datetime", "lpep_dropoff_datetime"]:
            assert frame[column].between(start, end, inclusive="left").all(), column
        assert frame["lpep_pickup_datetime"].dt.day.max() == calendar.monthrange(year, month)[1]


def test_synthetic_month_is_fast():
    make_synthetic_month(2023, 3)  # builds the cached zone structure
    started = time.perf_counter()
    make_synthetic_month(2023, 4)
    assert time.perf_counter() - started < 1.0


def test_synthetic_dtypes_equal_a_normalised_real_file(synthetic_jan, real_month_files):
    real = load_parquet(real_month_files[1])
    assert dict(real.dtypes.astype(str)) == dict(synthetic_jan.dtypes.astype(str))


def test_fares_add_up_and_are_plausible(synthetic_jan):
    parts = ["fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge"]
    summed = synthetic_jan[parts].sum(axis=1) + synthetic_jan["congestion_surcharge"].fillna(0)
    assert np.allclose(summed, synthetic_jan["total_amount"], atol=0.011)
    fare_median, fare_distance_correlation = fare_figures(synthetic_jan)
    assert 10 <= fare_median <= 17 and fare_distance_correlation > 0.8


def fare_figures(frame):
    """Median fare and fare/distance correlation of ordinary trips."""
    normal = frame[(frame["fare_amount"] > 0) & frame["trip_distance"].between(0.1, 100)]
    return normal["fare_amount"].median(), np.corrcoef(normal["fare_amount"], normal["trip_distance"])[0, 1]


# ---------------------------------------------------------------------------
# Synthetic months: calibrated on the real 2023 months (each within +-25 %)
#
# Offline, the synthetic months are held to TARGETS: the real January/February 2023
# figures (mean of the two months). When the real files are present, TARGETS are
# checked against them, and each synthetic month against its real month directly.

TOLERANCE = 0.25

NULLABLE = ["store_and_fwd_flag", "RatecodeID", "passenger_count", "payment_type", "trip_type", "congestion_surcharge"]


def month_statistics(frame: pd.DataFrame) -> dict[str, float]:
    """The figures the synthetic months are calibrated on.

    Raw-row figures: short/long shares, hour shares, null share. Everything
    else is over the trips a model sees: duration kept to 1-60 minutes.
    """
    minutes = (frame["lpep_dropoff_datetime"] - frame["lpep_pickup_datetime"]).dt.total_seconds() / 60
    kept = minutes.between(1, 60)
    trips, duration = frame[kept], minutes[kept]
    distance = trips["trip_distance"]
    moving = distance > 0
    log_distance, log_minutes = np.log(distance[moving]), np.log(duration[moving])
    slope, intercept = np.polyfit(log_distance, log_minutes, 1)
    zone_shares = trips["PULocationID"].value_counts(normalize=True)
    hour_shares = frame["lpep_pickup_datetime"].dt.hour.value_counts(normalize=True)
    stats = {
        "under_1_min_share": (minutes < 1).mean(),
        "over_60_min_share": (minutes > 60).mean(),
        "duration_mean": duration.mean(),
        "duration_median": duration.median(),
        "duration_sd": duration.std(),
        "log_fit_intercept": intercept,
        "log_fit_slope": slope,
        "log_fit_correlation": np.corrcoef(log_distance, log_minutes)[0, 1],
        "zero_distance_share": (distance == 0).mean(),
        "top_zone_share": zone_shares.iloc[0],
        "second_zone_share": zone_shares.iloc[1],
        "top_10_zone_share": zone_shares.iloc[:10].sum(),
        "zones_covering_95pct": float((zone_shares.cumsum() < 0.95).sum() + 1),
        "zones_seen": float(trips["PULocationID"].nunique()),
        "same_zone_share": (trips["PULocationID"] == trips["DOLocationID"]).mean(),
        "all_null_share": frame[NULLABLE].isna().all(axis=1).mean(),
    }
    for q in [5, 25, 50, 75, 95, 99]:
        stats[f"distance_p{q}"] = distance.quantile(q / 100)
    for hour in [4, 5, 15, 16, 17, 18]:
        stats[f"hour_{hour}_share"] = hour_shares.get(hour, 0.0)
    return stats


TARGETS = {  # real 2023-01/02 mean, 3 significant digits (checked below when the files are present)
    "under_1_min_share": 0.0246, "over_60_min_share": 0.00926,
    "duration_mean": 13.9, "duration_median": 11.6, "duration_sd": 9.17,
    "log_fit_intercept": 1.96, "log_fit_slope": 0.642, "log_fit_correlation": 0.823,
    "distance_p5": 0.44, "distance_p25": 1.18, "distance_p50": 1.9,
    "distance_p75": 3.32, "distance_p95": 7.86, "distance_p99": 13.9,
    "zero_distance_share": 0.0301,
    "top_zone_share": 0.192, "second_zone_share": 0.137, "top_10_zone_share": 0.682,
    "zones_covering_95pct": 47, "zones_seen": 218, "same_zone_share": 0.105,
    "hour_4_share": 0.00678, "hour_5_share": 0.00605,
    "hour_15_share": 0.0726, "hour_16_share": 0.0778, "hour_17_share": 0.0769, "hour_18_share": 0.0769,
    "all_null_share": 0.0689,
}


def within(measured: float, reference: float, tolerance: float = TOLERANCE) -> bool:
    return abs(measured - reference) <= tolerance * abs(reference)


@pytest.fixture(scope="module")
def synthetic_statistics() -> dict[int, dict[str, float]]:
    return {month: month_statistics(make_synthetic_month(2023, month)) for month in (1, 2)}


@pytest.fixture(scope="module")
def real_statistics(real_month_files) -> dict[int, dict[str, float]]:
    return {month: month_statistics(load_parquet(path)) for month, path in real_month_files.items()}


@pytest.mark.parametrize("month", [1, 2])
@pytest.mark.parametrize(("name", "target"), sorted(TARGETS.items()))
def test_synthetic_statistic_within_25_percent_of_the_target(synthetic_statistics, name, target, month):
    measured = synthetic_statistics[month][name]
    assert within(measured, target), f"2023-{month:02d} {name}: synthetic {measured:.4g}, target {target}"


@pytest.mark.parametrize("month", [1, 2])
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_synthetic_statistic_within_25_percent_of_the_real_month(synthetic_statistics, real_statistics, name, month):
    synthetic, real = synthetic_statistics[month][name], real_statistics[month][name]
    assert within(synthetic, real), f"2023-{month:02d} {name}: synthetic {synthetic:.4g}, real {real:.4g}"


def test_targets_are_the_real_figures(real_statistics):
    """TARGETS hold the real months' figures (so the offline test above checks against real data)."""
    real_mean = {name: (real_statistics[1][name] + real_statistics[2][name]) / 2 for name in TARGETS}
    off = {name: (TARGETS[name], round(real_mean[name], 5)) for name in TARGETS
           if not within(TARGETS[name], real_mean[name], 0.01)}
    assert not off, f"TARGETS differ from the real 2023-01/02 mean by more than 1 %: {off}"


def absurd_distances(frame) -> int:
    return int((frame["trip_distance"] > 100).sum())


def longest_trip_minutes(frame) -> float:
    return (frame["lpep_dropoff_datetime"] - frame["lpep_pickup_datetime"]).dt.total_seconds().max() / 60


def destination_concentration(frame) -> tuple[float, float]:
    """Share of the busiest pickup zone's trips going to its top 3 destinations; the same share citywide."""
    busiest = frame["PULocationID"].value_counts().index[0]
    destinations = frame.loc[frame["PULocationID"] == busiest, "DOLocationID"]
    return (destinations.value_counts(normalize=True).iloc[:3].sum(),
            frame["DOLocationID"].value_counts(normalize=True).iloc[:3].sum())


def test_synthetic_keeps_a_few_absurd_distances(synthetic_jan):
    assert 5 <= absurd_distances(synthetic_jan) <= 200


def test_synthetic_long_trips_reach_almost_a_day(synthetic_jan):
    assert 20 * 60 <= longest_trip_minutes(synthetic_jan) < 24 * 60


def test_destinations_depend_on_the_pickup_zone(synthetic_jan):
    top_three, everywhere = destination_concentration(synthetic_jan)
    assert top_three > 0.25 and top_three > everywhere + 0.05


@pytest.mark.parametrize("month", [1, 2])
def test_the_real_months_meet_the_same_bounds(real_month_files, month):
    """The bounds the synthetic tests above use describe the real months too."""
    real = load_parquet(real_month_files[month])
    assert 5 <= absurd_distances(real) <= 200
    assert 20 * 60 <= longest_trip_minutes(real) < 24 * 60
    top_three, everywhere = destination_concentration(real)
    assert top_three > 0.25 and top_three > everywhere + 0.05
    fare_median, fare_distance_correlation = fare_figures(real)
    assert 10 <= fare_median <= 17 and fare_distance_correlation > 0.8


def model_rmses(train: pd.DataFrame, valid: pd.DataFrame) -> dict[str, float]:
    """Validation RMSE of the mean, a linear regression and xgboost on the course's features
    (PU_DO + trip_distance, 1-60 minute trips), trained on ``train``."""
    xgb = pytest.importorskip("xgboost")
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import root_mean_squared_error

    def features(frame):
        minutes = (frame["lpep_dropoff_datetime"] - frame["lpep_pickup_datetime"]).dt.total_seconds() / 60
        kept = frame[minutes.between(1, 60)]
        records = pd.DataFrame({
            "PU_DO": kept["PULocationID"].astype(str) + "_" + kept["DOLocationID"].astype(str),
            "trip_distance": kept["trip_distance"],
        }).to_dict("records")
        return records, minutes[minutes.between(1, 60)].to_numpy()

    train_records, y_train = features(train)
    valid_records, y_valid = features(valid)
    vectorizer = DictVectorizer()
    x_train, x_valid = vectorizer.fit_transform(train_records), vectorizer.transform(valid_records)
    booster = xgb.train(
        {"max_depth": 6, "learning_rate": 0.3, "objective": "reg:squarederror", "nthread": 2, "seed": 0},
        xgb.DMatrix(x_train, label=y_train), num_boost_round=30,
    )
    return {
        "mean": root_mean_squared_error(y_valid, np.full_like(y_valid, y_train.mean())),
        "linear": root_mean_squared_error(y_valid, LinearRegression().fit(x_train, y_train).predict(x_valid)),
        "xgboost": root_mean_squared_error(y_valid, booster.predict(xgb.DMatrix(x_valid))),
    }


def assert_course_ranking(rmse: dict[str, float]) -> None:
    """xgboost < linear regression < the mean, by clear margins (real Jan -> Feb 2023: 5.2, 6.0, 9.3)."""
    assert rmse["xgboost"] < rmse["linear"] - 0.5, rmse
    assert rmse["linear"] < rmse["mean"] - 1.5, rmse


@pytest.fixture(scope="module")
def synthetic_model_rmses() -> dict[str, float]:
    return model_rmses(make_synthetic_month(2023, 1), make_synthetic_month(2023, 2))


def test_model_ranking_on_synthetic_months(synthetic_model_rmses):
    assert_course_ranking(synthetic_model_rmses)


def test_model_ranking_on_the_real_months_and_synthetic_rmses_close_to_them(synthetic_model_rmses, real_month_files):
    real = model_rmses(load_parquet(real_month_files[1]), load_parquet(real_month_files[2]))
    assert_course_ranking(real)
    for model, rmse in real.items():
        assert within(synthetic_model_rmses[model], rmse), (model, synthetic_model_rmses[model], rmse)


# ---------------------------------------------------------------------------
# Real files


def test_real_months_load_from_file_with_identical_dtypes(real_month_files):
    folder = real_month_files[1].parent
    january = load_taxi_month(2023, 1, source="file", data_dir=folder)
    february = load_taxi_month(2023, 2, source="file", data_dir=folder)
    # every row, as the parquet footers count them (read without pandas or the loader)
    assert len(january) == pq.read_metadata(real_month_files[1]).num_rows == 68_211
    assert len(february) == pq.read_metadata(real_month_files[2]).num_rows == 64_809
    assert january.attrs["source"] == february.attrs["source"] == "file"
    assert dict(january.dtypes.astype(str)) == dict(february.dtypes.astype(str)) == canonical_dtypes()
    # int32 -> int64 and int64 -> float64 must not change any value
    raw_february = pd.read_parquet(real_month_files[2])
    assert (february["PULocationID"].to_numpy() == raw_february["PULocationID"].to_numpy()).all()
    assert february["passenger_count"].isna().sum() == raw_february["passenger_count"].isna().sum()
