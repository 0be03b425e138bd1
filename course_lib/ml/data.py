"""Load one month of NYC TLC green-taxi trips, from a file, the TLC site, or a synthetic twin.

Every lesson starts from ``load_taxi_month(2023, 1)``. The course must run on
a laptop with no internet (a train, a locked-down classroom, CI), so the
loader tries, in order:

1. the TLC-named file in the data folder (``course_lib.paths.data_dir()``,
   ``COURSE_DATA_DIR``), e.g. ``work/data/green_tripdata_2023-01.parquet``;
2. a download from the TLC site into that folder (skipped when
   ``COURSE_OFFLINE=1``), written to a temporary file and renamed only once it
   parses as parquet, so an interrupted download never leaves a broken file.
   When the site cannot be reached for a reason retrying will not change (the
   name does not resolve, no route, connection refused, no answer to the
   connection attempt), the process says so once and stops trying: later months
   go straight to step 3 (``source="download"`` still tries, as asked);
3. a synthetic month (:func:`make_synthetic_month`) calibrated on the real
   January and February 2023 files, so the pipeline, the model comparison and
   the plots behave like they do on real data.

It always says which of the three served the month (a log record *and* a
printed line, since learners read notebook output) and records it on the
frame: ``df.attrs["source"]`` is ``"file"``, ``"download"`` or ``"synthetic"``
and ``df.attrs["path"]`` the file read (``None`` for synthetic data).

TLC changed the parquet types between months (2023-01 has int64 zone ids and
double nullable columns, 2023-02 int32 ids and int64 nullable columns), so
every frame is normalised to :data:`GREEN_COLUMNS`: one month concatenates
with, trains on and validates against any other.

Every bad input raises :class:`DataError` whose message names the problem and
the fix.
"""

from __future__ import annotations

import calendar
import datetime as dt
import errno
import http.client
import logging
import operator
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from course_lib import paths, settings

logger = logging.getLogger("course_lib.ml.data")

TLC_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data/{color}_tripdata_{year:04d}-{month:02d}.parquet"

SOURCES = ("auto", "file", "download", "synthetic")

# First month TLC published per colour; only green has a schema here.
FIRST_MONTH = {"green": (2013, 8)}

# pandas 3 has a real string dtype ("str", NaN for missing); pandas 2 keeps
# strings as object, where astype("str") would turn None into the text "nan".
_STRING_DTYPE = "str" if int(pd.__version__.split(".")[0]) >= 3 else "object"

# Canonical dtypes, taken from the real 2023-01 file (the month the course
# trains on): int64 ids, float64 for anything that can be missing (pandas
# integers cannot hold NaN), microsecond datetimes as pyarrow writes them.
# ehail_fee is all null; TLC stores it as a null column (2023-01) or double
# (2023-02), we use float64 so it is numeric either way.
GREEN_COLUMNS: dict[str, str] = {
    "VendorID": "int64",
    "lpep_pickup_datetime": "datetime64[us]",
    "lpep_dropoff_datetime": "datetime64[us]",
    "store_and_fwd_flag": _STRING_DTYPE,
    "RatecodeID": "float64",
    "PULocationID": "int64",
    "DOLocationID": "int64",
    "passenger_count": "float64",
    "trip_distance": "float64",
    "fare_amount": "float64",
    "extra": "float64",
    "mta_tax": "float64",
    "tip_amount": "float64",
    "tolls_amount": "float64",
    "ehail_fee": "float64",
    "improvement_surcharge": "float64",
    "total_amount": "float64",
    "payment_type": "float64",
    "trip_type": "float64",
    "congestion_surcharge": "float64",
}

# Columns TLC leaves empty together on ~6.5 % of rows (trips reported by
# street-hail apps without the meter's metadata).
NULLABLE_TOGETHER = (
    "store_and_fwd_flag",
    "RatecodeID",
    "passenger_count",
    "payment_type",
    "trip_type",
    "congestion_surcharge",
)


class DataError(ValueError):
    """Bad input to the data loader; the message says what is wrong and how to fix it."""


# ---------------------------------------------------------------------------
# Names, months and settings


def month_filename(year: int, month: int, color: str = "green") -> str:
    """TLC's file name for a month, e.g. ``green_tripdata_2023-01.parquet``."""
    return f"{color}_tripdata_{year:04d}-{month:02d}.parquet"


def month_url(year: int, month: int, color: str = "green") -> str:
    """Where TLC publishes the month (reads :data:`TLC_URL` at call time, so tests can point it elsewhere)."""
    return TLC_URL.format(color=color, year=year, month=month)


def _month_label(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def _check_color(color: str) -> None:
    if color not in FIRST_MONTH:
        raise DataError(
            f"color {color!r} is not supported: this loader knows the green-taxi schema only; "
            "pass color='green'"
        )


def _check_month(year: int, month: int, color: str = "green") -> tuple[int, int]:
    """Validate a (year, month) and return it as plain ints."""
    _check_color(color)
    try:
        if isinstance(year, bool) or isinstance(month, bool):
            raise TypeError
        year, month = operator.index(year), operator.index(month)
    except TypeError:
        raise DataError(
            f"year and month must be whole numbers, got year={year!r}, month={month!r}: "
            "pass e.g. load_taxi_month(2023, 1)"
        ) from None
    if not 1 <= month <= 12:
        raise DataError(f"month {month} is outside 1-12: pass a month between 1 and 12")
    first_year, first_month = FIRST_MONTH[color]
    if (year, month) < (first_year, first_month):
        raise DataError(
            f"{_month_label(year, month)} is before TLC {color}-taxi data exists "
            f"(it starts {_month_label(first_year, first_month)}): "
            f"pass a month from {_month_label(first_year, first_month)} on, e.g. 2023-01"
        )
    today = dt.date.today()
    if (year, month) > (today.year, today.month):
        raise DataError(
            f"{_month_label(year, month)} is in the future (today is {today:%Y-%m}): "
            "pass a month that has already happened, e.g. 2023-01"
        )
    return year, month


class DataSettingError(DataError, settings.SettingError):
    """A ``COURSE_*`` setting the loader reads has a bad value (a :class:`DataError` too)."""


def _download_timeout() -> float:
    return settings.read("download_timeout", error=DataSettingError)


def _offline() -> bool:
    return settings.read("offline", error=DataSettingError)


def _display_path(path: Path) -> str:
    """Short path for messages: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _announce(frame: pd.DataFrame, source: str, path: Path | None, line: str) -> pd.DataFrame:
    """Record where the frame came from, log it and print it (learners read notebook output)."""
    frame.attrs["source"] = source
    frame.attrs["path"] = str(path) if path is not None else None
    logger.info(line)
    print(line)
    return frame


# ---------------------------------------------------------------------------
# Reading and normalising


def normalise_green_frame(frame: pd.DataFrame, origin: str = "frame") -> pd.DataFrame:
    """Return ``frame`` with the 20 :data:`GREEN_COLUMNS` first, each cast to its canonical dtype.

    Extra columns are kept, unchanged, after them. ``origin`` names the frame
    in error messages (usually its path).
    """
    missing = [column for column in GREEN_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(
            f"{origin} is missing required columns {missing}: "
            "use an unmodified TLC green-taxi month (green_tripdata_YYYY-MM.parquet)"
        )
    out = {}
    for column, dtype in GREEN_COLUMNS.items():
        values = frame[column]
        try:
            if dtype.startswith("datetime64"):
                values = pd.to_datetime(values)
                if getattr(values.dt, "tz", None) is not None:
                    values = values.dt.tz_localize(None)
                values = values.astype(dtype)
            elif dtype == "int64":
                values = pd.to_numeric(values)
                if values.isna().any():
                    raise DataError(
                        f"{origin}: column {column} has {int(values.isna().sum())} missing values "
                        f"but must be whole numbers: drop those rows before loading"
                    )
                if (values % 1 != 0).any():
                    raise DataError(
                        f"{origin}: column {column} has fractional values but must be whole numbers: "
                        "use an unmodified TLC green-taxi month"
                    )
                values = values.astype(dtype)
            elif dtype == "float64":
                values = pd.to_numeric(values).astype(dtype)
            else:  # the store-and-forward flag, "Y"/"N"
                values = values.astype(dtype)
        except DataError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise DataError(
                f"{origin}: column {column} cannot be read as {dtype} ({exc}): "
                "use an unmodified TLC green-taxi month"
            ) from exc
        out[column] = values.reset_index(drop=True)
    normalised = pd.DataFrame(out)
    extras = [column for column in frame.columns if column not in GREEN_COLUMNS]
    if extras:
        normalised = pd.concat([normalised, frame[extras].reset_index(drop=True)], axis=1)
    return normalised


def _read_parquet_file(path: Path, delete_hint: bool = True) -> pd.DataFrame:
    """Read and normalise a parquet file, turning every failure into a DataError."""
    if not path.is_file():
        raise DataError(
            f"no parquet file at {path}: check the path, or pass a month like '2023-01' instead"
        )
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        hint = (
            "delete it so the month is downloaded again (or pass source='synthetic')"
            if delete_hint
            else "check that it is a TLC parquet file"
        )
        raise DataError(f"{path} is not a readable parquet file ({exc}): {hint}") from exc
    normalised = normalise_green_frame(frame, origin=str(path))
    # pandas stores a frame's attrs in the parquet it writes: a synthetic month saved to a file
    # (lesson 05 uploads the months it loaded) is still synthetic when read back.
    if frame.attrs.get("source") == "synthetic":
        normalised.attrs["source"] = "synthetic"
    return normalised


def load_parquet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load a parquet file of green-taxi trips given by path (normalised, ``attrs["source"] == "file"``,
    or ``"synthetic"`` for a synthetic month saved by pandas)."""
    path = Path(path).expanduser()
    frame = _read_parquet_file(path, delete_hint=False)
    kind = "a synthetic month's parquet file" if frame.attrs.get("source") == "synthetic" else "parquet file"
    return _announce(
        frame, frame.attrs.get("source", "file"), path, f"{_display_path(path)}: {kind} ({len(frame):,} rows)"
    )


# ---------------------------------------------------------------------------
# Downloading


class _DownloadFailed(Exception):
    """Internal: why a download did not produce a file (a short reason for messages); ``permanent``
    when retrying in this process cannot help (see :func:`_will_not_change`)."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


# Reasons a connection fails that retrying will not change while this process runs: the name does
# not resolve, no route to the host or network, nothing listens there, or the connection attempt
# itself gets no answer (a firewall dropping packets: every later attempt would wait out its
# timeout too). A server that answers slowly, or an HTTP error, is worth trying again.
_PERMANENT_ERRNOS = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}


def _will_not_change(reason: object) -> bool:
    """True for a connection failure (``URLError.reason``) that will not change by retrying."""
    if isinstance(reason, (socket.gaierror, TimeoutError, socket.timeout)):
        return True  # DNS failure; a timeout while connecting (URLError wraps connect errors only)
    return isinstance(reason, OSError) and reason.errno in _PERMANENT_ERRNOS


#: Hosts this process stopped downloading from, with the reason (see :func:`load_taxi_month`).
_UNREACHABLE: dict[str, str] = {}


def _download(url: str, destination: Path, timeout: float) -> None:
    """Download ``url`` to ``destination`` atomically: temp file, parquet check, rename
    (:func:`course_lib.paths.atomic_write`).

    On any failure the temp file is removed and ``destination`` is untouched.
    """
    try:
        paths.writable_folder(destination.parent, "The data folder",
                              "set COURSE_DATA_DIR (or data_dir=) to a folder you can write to")
    except paths.FolderError as exc:
        raise DataError(str(exc)) from None

    def fetch(temp_path: Path) -> None:
        with open(temp_path, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            received = 0
            with tqdm(
                total=expected, unit="B", unit_scale=True, unit_divisor=1024,
                desc=destination.name, leave=False,
            ) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if expected is not None and received != expected:
            raise _DownloadFailed(f"connection closed after {received:,} of {expected:,} bytes")
        try:
            pq.read_metadata(temp_path)  # parses the footer: catches HTML error pages
        except Exception as exc:
            raise _DownloadFailed(f"the server sent something that is not parquet ({exc})") from exc

    try:
        paths.atomic_write(destination, fetch)
    except urllib.error.HTTPError as exc:
        raise _DownloadFailed(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _DownloadFailed(f"cannot reach the server ({exc.reason})", permanent=_will_not_change(exc.reason)) from exc
    except (TimeoutError, socket.timeout) as exc:
        raise _DownloadFailed(f"no answer within {timeout:g} s (COURSE_DOWNLOAD_TIMEOUT)") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _DownloadFailed(f"{type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------------------
# The loader


def load_taxi_month(
    year: int,
    month: int,
    color: str = "green",
    source: str = "auto",
    data_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Load one month of trips, normalised to :data:`GREEN_COLUMNS`.

    ``source``: ``"auto"`` (file in ``data_dir`` if present, else download it,
    else synthetic), or ``"file"``, ``"download"``, ``"synthetic"`` to force
    one source without fallback. ``data_dir`` defaults to
    ``course_lib.paths.data_dir()`` (``COURSE_DATA_DIR``).
    """
    if source not in SOURCES:
        raise DataError(
            f"source {source!r} is not one of {', '.join(map(repr, SOURCES))}: pass one of those "
            "('auto' uses the file, else downloads, else falls back to synthetic data)"
        )
    year, month = _check_month(year, month, color)
    label = f"{_month_label(year, month)} {color}"

    if source == "synthetic":
        frame = make_synthetic_month(year, month, color)
        return _announce(
            frame, "synthetic", None,
            f"{label}: synthetic, {len(frame):,} rows (requested with source='synthetic')",
        )

    folder = Path(data_dir).expanduser() if data_dir is not None else paths.data_dir()
    target = folder / month_filename(year, month, color)

    if source in ("auto", "file") and target.is_file():
        frame = _read_parquet_file(target)
        if frame.attrs.get("source") == "synthetic":
            return _announce(
                frame, "synthetic", target,
                f"{label}: synthetic, {len(frame):,} rows (a synthetic month saved as {_display_path(target)})",
            )
        return _announce(
            frame, "file", target,
            f"{label}: real TLC file {_display_path(target)} ({len(frame):,} rows)",
        )
    if source == "file":
        raise DataError(
            f"{target.name} not found: looked in {folder}. Put the TLC file there, "
            "set COURSE_DATA_DIR to the folder that holds it, "
            "or use source='auto' (download, else synthetic) or source='synthetic'"
        )

    url = month_url(year, month, color)
    host = urllib.parse.urlsplit(url).netloc
    if source == "auto" and _offline():
        reason = "COURSE_OFFLINE=1, download skipped"
    elif source == "auto" and host in _UNREACHABLE:
        reason = f"download skipped: {host} could not be reached earlier in this process"
    else:
        logger.info("%s: downloading %s", label, url)
        try:
            _download(url, target, _download_timeout())
        except _DownloadFailed as exc:
            if exc.permanent and host not in _UNREACHABLE:
                _stop_downloading(host, str(exc))
            if source == "download":
                raise DataError(
                    f"download of {url} failed: {exc}. Check your connection, put the file in "
                    f"{folder} yourself, or work offline with source='synthetic'"
                ) from exc
            reason = f"download failed: {exc}"  # the URL is in the log record above
        else:
            _UNREACHABLE.pop(host, None)
            frame = _read_parquet_file(target)
            return _announce(
                frame, "download", target,
                f"{label}: downloaded {url} to {_display_path(target)} ({len(frame):,} rows)",
            )

    frame = make_synthetic_month(year, month, color)
    return _announce(
        frame, "synthetic", None,
        f"{label}: synthetic, {len(frame):,} rows (offline fallback: {reason})",
    )


def _stop_downloading(host: str, reason: str) -> None:
    """Say once, for this process, that downloads from ``host`` stop and why."""
    _UNREACHABLE[host] = reason
    line = (f"Downloads from {host} stop for this process: {reason}, which retrying will not change. "
            "Months not in the data folder are synthetic from now on (restart the kernel to try again). "
            "Working offline? Set COURSE_OFFLINE=1 to skip the attempt altogether.")
    logger.warning(line)
    print(line)


_MONTH_SPEC = re.compile(r"^\s*(\d{4})-(\d{1,2})\s*$")


def load_month(
    spec: str | os.PathLike[str],
    source: str = "auto",
    data_dir: str | os.PathLike[str] | None = None,
    color: str = "green",
) -> pd.DataFrame:
    """Load ``"YYYY-MM"`` through :func:`load_taxi_month`, or a ``.parquet`` path through :func:`load_parquet`."""
    text = os.fspath(spec) if isinstance(spec, (str, os.PathLike)) else None
    if text is None:
        raise DataError(
            f"month spec {spec!r} is neither 'YYYY-MM' nor a path: pass e.g. '2023-01' "
            "or 'work/data/green_tripdata_2023-01.parquet'"
        )
    match = _MONTH_SPEC.match(text)
    if match:
        return load_taxi_month(int(match[1]), int(match[2]), color, source, data_dir)
    if text.lower().endswith(".parquet"):
        if source not in ("auto", "file"):
            raise DataError(
                f"source={source!r} does not apply to a path ({text}): "
                "drop source, or pass a month like '2023-01'"
            )
        return load_parquet(text)
    raise DataError(
        f"month spec {text!r} is neither 'YYYY-MM' nor a path to a .parquet file: "
        "pass e.g. '2023-01' or 'work/data/green_tripdata_2023-01.parquet'"
    )


# ---------------------------------------------------------------------------
# Synthetic months
#
# Calibrated on the real 2023-01 and 2023-02 green files. Distribution figures
# below are for the rows a model sees, i.e. after keeping 1-60 minute trips.
# The zone structure (popularity, favourite destinations, per-pair distance
# and speed) is fixed across months, like the real city, so a model trained
# on one synthetic month generalises to the next; only trips are resampled.

_STRUCTURE_SEED = 2023_01  # fixed: the "city" is the same every month
_ZONE_IDS = np.arange(1, 264)  # TLC taxi zones 1-263 (264/265 are "unknown")
# Real busiest pickup zones, busiest first (East/Central Harlem, Astoria, ...).
_TOP_PICKUP_ZONES = (74, 75, 41, 166, 95, 43, 82, 97, 7, 244)
_TOP_PICKUP_SHARES = (0.190, 0.135, 0.060, 0.058, 0.056, 0.043, 0.042, 0.032, 0.028, 0.026)
# Then two geometric tails: the next 37 zones bring the total to 95 %, the
# remaining 216 share 5 % with a steep decay, so ~220 zones show up a month.
_MID_TAIL = (37, 0.024, 0.91789)  # zones, first share, ratio
_FAR_TAIL = (216, 0.0014, 0.97206)

# Pickup share by hour 0-23 (real 2023-01/02, %): evening peak, night trough.
_HOUR_SHARES = np.array([
    1.72, 1.26, 0.97, 0.82, 0.68, 0.61, 1.44, 3.79, 4.69, 5.17, 5.29, 5.45,
    5.43, 5.89, 6.41, 7.26, 7.78, 7.69, 7.69, 6.16, 4.86, 3.67, 3.01, 2.31,
])

_SAME_ZONE_SHARE = 0.084  # + 'anywhere' draws landing home = ~10.5 %
# Each pickup zone sends half its trips to its own few favourite zones (real
# zone 74: 15 % to zone 75, 9 % to 236, 7 % to 41, ...), the rest anywhere.
_FAVOURITE_SHARES = np.array([0.14, 0.09, 0.07, 0.06, 0.05, 0.04, 0.03, 0.03])

# Trip distance (miles) by quantile, zeros included (~3 % of trips record 0
# miles), interpolated in log space. Real 1-60 min figures, except p95/p99
# set a little higher because the 60-minute cut removes some long trips.
_ZERO_DISTANCE_SHARE = 0.031
_DISTANCE_QUANTILES = np.array([
    (0.031, 0.01), (0.035, 0.11), (0.04, 0.29), (0.05, 0.42), (0.06, 0.50),
    (0.08, 0.61), (0.10, 0.70), (0.25, 1.17), (0.50, 1.90), (0.75, 3.30),
    (0.95, 7.90), (0.99, 14.5), (0.995, 17.1), (0.999, 26.5), (1.0, 45.0),
])
_PAIR_DISTANCE_WEIGHT = 0.75  # share of log-distance variance set by the zone pair
_ABSURD_DISTANCE_SHARE = 0.0005  # odometer glitches: 100 to 150,000 "miles"

# log(minutes) = 1.94 + 0.68 log(miles) + pickup-zone speed + pair effect + noise
_LOG_MINUTES_INTERCEPT = 1.94
_LOG_MINUTES_SLOPE = 0.71  # measured ~0.68: odometer glitches flatten the fit
_ZONE_SPEED_SD = 0.09
_PAIR_EFFECT_SD = 0.15
_TRIP_NOISE_SD = 0.27

_UNDER_MINUTE_SHARE = 0.0225  # cancelled / test trips; very short rides add ~0.3 %
_LONG_TRIP_SHARE = 0.0035  # meters left running, up to a day; slow rides add ~0.7 %
_ALL_NULL_SHARE = 0.065
_REFUND_SHARE = 0.0025  # negative amounts, as TLC records refunds


@dataclass(frozen=True)
class _City:
    pickup_probs: np.ndarray  # per zone index
    dropoff_cumprobs: np.ndarray  # background destination popularity (cumulative)
    favourites: np.ndarray  # (zones, len(_FAVOURITE_SHARES)) zone indices
    pair_distance_z: np.ndarray  # (zones, zones) standard normal, pair's typical length
    pair_log_minutes: np.ndarray  # (zones, zones) pair + pickup-zone speed effect
    congestion_zone: np.ndarray  # dropoff zones inside the congestion-charge area


@lru_cache(maxsize=1)
def _city() -> _City:
    """The fixed zone structure shared by all synthetic months."""
    rng = np.random.default_rng(_STRUCTURE_SEED)
    n_zones = len(_ZONE_IDS)
    top = np.array(_TOP_PICKUP_ZONES) - 1
    others = rng.permutation(np.setdiff1d(np.arange(n_zones), top))
    order = np.concatenate([top, others])  # zone indices, busiest first
    shares = np.concatenate([
        _TOP_PICKUP_SHARES,
        _MID_TAIL[1] * _MID_TAIL[2] ** np.arange(_MID_TAIL[0]),
        _FAR_TAIL[1] * _FAR_TAIL[2] ** np.arange(_FAR_TAIL[0]),
    ])
    pickup_probs = np.empty(n_zones)
    pickup_probs[order] = shares / shares.sum()

    # Destinations are spread wider than pickups (green cabs pick up in the
    # outer boroughs and drop off anywhere): flatten the popularity.
    dropoff_probs = pickup_probs**0.75
    dropoff_probs /= dropoff_probs.sum()

    favourites = np.empty((n_zones, len(_FAVOURITE_SHARES)), dtype=np.int64)
    for zone in range(n_zones):
        candidates = dropoff_probs.copy()
        candidates[zone] = 0.0
        favourites[zone] = rng.choice(
            n_zones, size=len(_FAVOURITE_SHARES), replace=False, p=candidates / candidates.sum()
        )

    pair_distance_z = rng.standard_normal((n_zones, n_zones))
    # Trips within one zone are short (real same-zone trips: ~1 mile).
    pair_distance_z[np.arange(n_zones), np.arange(n_zones)] = -1.3
    zone_speed = rng.normal(0.0, _ZONE_SPEED_SD, n_zones)
    pair_log_minutes = zone_speed[:, None] + rng.normal(0.0, _PAIR_EFFECT_SD, (n_zones, n_zones))
    congestion_zone = rng.random(n_zones) < 0.27
    return _City(
        pickup_probs=pickup_probs,
        dropoff_cumprobs=np.cumsum(dropoff_probs),
        favourites=favourites,
        pair_distance_z=pair_distance_z,
        pair_log_minutes=pair_log_minutes,
        congestion_zone=congestion_zone,
    )


def _month_seed(year: int, month: int, color: str) -> int:
    # crc32, not hash(): Python salts str hashes per process.
    return zlib.crc32(f"{color}-{year:04d}-{month:02d}".encode())


def _draw(rng: np.random.Generator, values: list[float], weights: list[float], size: int) -> np.ndarray:
    weights_array = np.asarray(weights, dtype=float)
    return rng.choice(np.asarray(values, dtype=float), size=size, p=weights_array / weights_array.sum())


def make_synthetic_month(year: int, month: int, color: str = "green") -> pd.DataFrame:
    """A deterministic synthetic month shaped like the real 2023 green-taxi months.

    Same (year, month) gives the same frame; different months differ. Columns
    and dtypes are :data:`GREEN_COLUMNS`; ``attrs["source"] == "synthetic"``.
    """
    year, month = _check_month(year, month, color)
    city = _city()
    rng = np.random.default_rng(_month_seed(year, month, color))
    n = int(rng.integers(66_000, 71_001))
    n_zones = len(_ZONE_IDS)

    # Zones: pickup by popularity; dropoff = same zone, a favourite, or anywhere.
    pickup = rng.choice(n_zones, size=n, p=city.pickup_probs)
    route = rng.random(n)
    favourite_edges = _SAME_ZONE_SHARE + np.cumsum(_FAVOURITE_SHARES)
    favourite_rank = np.searchsorted(favourite_edges, route, side="right")
    anywhere = np.minimum(
        np.searchsorted(city.dropoff_cumprobs, rng.random(n) * city.dropoff_cumprobs[-1]), n_zones - 1
    )
    dropoff = np.where(
        route < _SAME_ZONE_SHARE,
        pickup,
        np.where(
            favourite_rank < len(_FAVOURITE_SHARES),
            city.favourites[pickup, np.minimum(favourite_rank, len(_FAVOURITE_SHARES) - 1)],
            anywhere,
        ),
    )

    # True distance: the pair's typical length plus trip noise, mapped through
    # the real quantile curve by rank so the marginal matches exactly.
    length_z = (
        np.sqrt(_PAIR_DISTANCE_WEIGHT) * city.pair_distance_z[pickup, dropoff]
        + np.sqrt(1 - _PAIR_DISTANCE_WEIGHT) * rng.standard_normal(n)
    )
    rank_level = (np.argsort(np.argsort(length_z)) + 0.5) / n
    level = _ZERO_DISTANCE_SHARE + (1 - _ZERO_DISTANCE_SHARE) * rank_level
    true_miles = np.exp(
        np.interp(level, _DISTANCE_QUANTILES[:, 0], np.log(_DISTANCE_QUANTILES[:, 1]))
    )

    log_minutes = (
        _LOG_MINUTES_INTERCEPT
        + _LOG_MINUTES_SLOPE * np.log(true_miles)
        + city.pair_log_minutes[pickup, dropoff]
        + rng.normal(0.0, _TRIP_NOISE_SD, n)
    )
    ride_minutes = np.exp(log_minutes)
    minutes = ride_minutes.copy()

    # What the meter recorded: some zeros, a few absurd odometer readings.
    miles = np.round(true_miles, 2)
    miles[rng.random(n) < _ZERO_DISTANCE_SHARE] = 0.0
    absurd = rng.random(n) < _ABSURD_DISTANCE_SHARE
    miles[absurd] = np.round(np.exp(rng.uniform(np.log(100), np.log(150_000), absurd.sum())), 2)

    # Dirty durations the course filters out (keeps 1-60 minutes).
    kind = rng.random(n)
    under_minute = kind < _UNDER_MINUTE_SHARE
    minutes[under_minute] = rng.uniform(0.0, 1.0, under_minute.sum())
    miles[under_minute] = np.where(
        rng.random(under_minute.sum()) < 0.67, 0.0, np.round(rng.uniform(0.01, 0.5, under_minute.sum()), 2)
    )
    long_trip = (kind >= _UNDER_MINUTE_SHARE) & (kind < _UNDER_MINUTE_SHARE + _LONG_TRIP_SHARE)
    forgot_meter = rng.random(long_trip.sum()) < 0.45
    minutes[long_trip] = np.where(
        forgot_meter, rng.uniform(1200.0, 1439.9, long_trip.sum()), rng.uniform(60.5, 180.0, long_trip.sum())
    )

    # Timestamps: day uniform, hour by the real profile, whole seconds.
    days_in_month = calendar.monthrange(year, month)[1]
    month_start = np.datetime64(f"{year:04d}-{month:02d}-01T00:00:00", "s")
    duration_s = np.round(minutes * 60).astype(np.int64)
    pickup_s = (
        rng.integers(0, days_in_month, n) * 86_400
        + rng.choice(24, size=n, p=_HOUR_SHARES / _HOUR_SHARES.sum()) * 3_600
        + rng.integers(0, 3_600, n)
    )
    # Keep drop-offs inside the month too (pulls a few late trips earlier).
    pickup_s = np.minimum(pickup_s, days_in_month * 86_400 - 1 - duration_s)
    pickup_time = month_start + pickup_s.astype("timedelta64[s]")
    dropoff_time = pickup_time + duration_s.astype("timedelta64[s]")

    # Fares: metered fare ~ 3 + 2.5/mile + 0.5/minute of actual riding.
    fare = np.round(
        np.maximum(3.0 + 2.5 * true_miles + 0.5 * np.minimum(ride_minutes, 90) + rng.normal(0, 1.0, n), 3.0), 2
    )
    extra = _draw(rng, [0.0, 2.5, 1.0, 2.75, 5.0], [0.60, 0.18, 0.165, 0.025, 0.03], n)
    mta_tax = _draw(rng, [0.5, 1.5, 0.0], [0.78, 0.13, 0.09], n)
    improvement = _draw(rng, [1.0, 0.3, 0.0], [0.94, 0.055, 0.005], n)
    tolls = np.where(rng.random(n) < 0.025, 6.94, 0.0)
    payment = _draw(rng, [1, 2, 3, 4], [0.64, 0.35, 0.0075, 0.0025], n)
    tips = np.where(
        (payment == 1) & (rng.random(n) > 0.15), np.round(fare * rng.uniform(0.1, 0.3, n), 2), 0.0
    )
    congestion = np.where(city.congestion_zone[dropoff], 2.75, 0.0)

    all_null = rng.random(n) < _ALL_NULL_SHARE
    flag = np.where(rng.random(n) < 0.005, "Y", "N").astype(object)
    flag[all_null] = None
    nullable = {
        "RatecodeID": _draw(rng, [1, 5, 2, 4, 3], [0.972, 0.025, 0.0024, 0.0008, 0.0005], n),
        "passenger_count": _draw(rng, [1, 2, 5, 6, 3, 4, 0], [0.851, 0.079, 0.027, 0.016, 0.015, 0.0055, 0.0055], n),
        "payment_type": payment,
        "trip_type": _draw(rng, [1, 2], [0.975, 0.025], n),
        "congestion_surcharge": congestion,
    }
    for values in nullable.values():
        values[all_null] = np.nan

    total = fare + extra + mta_tax + tips + tolls + improvement + np.nan_to_num(nullable["congestion_surcharge"])
    money = {"fare_amount": fare, "extra": extra, "mta_tax": mta_tax, "tip_amount": tips, "tolls_amount": tolls,
             "improvement_surcharge": improvement, "total_amount": np.round(total, 2)}
    refund = rng.random(n) < _REFUND_SHARE
    for values in [*money.values(), nullable["congestion_surcharge"]]:
        values[refund] = -values[refund]

    frame = pd.DataFrame({
        "VendorID": _draw(rng, [2, 1], [0.865, 0.135], n).astype(np.int64),
        "lpep_pickup_datetime": pickup_time,
        "lpep_dropoff_datetime": dropoff_time,
        "store_and_fwd_flag": flag,
        "RatecodeID": nullable["RatecodeID"],
        "PULocationID": _ZONE_IDS[pickup],
        "DOLocationID": _ZONE_IDS[dropoff],
        "passenger_count": nullable["passenger_count"],
        "trip_distance": miles,
        "fare_amount": money["fare_amount"],
        "extra": money["extra"],
        "mta_tax": money["mta_tax"],
        "tip_amount": money["tip_amount"],
        "tolls_amount": money["tolls_amount"],
        "ehail_fee": np.full(n, np.nan),  # TLC never fills it
        "improvement_surcharge": money["improvement_surcharge"],
        "total_amount": money["total_amount"],
        "payment_type": nullable["payment_type"],
        "trip_type": nullable["trip_type"],
        "congestion_surcharge": nullable["congestion_surcharge"],
    })
    # Real files are (roughly) in pickup order.
    frame = frame.sort_values("lpep_pickup_datetime", kind="stable", ignore_index=True)
    frame = normalise_green_frame(frame, origin="synthetic month")
    frame.attrs["source"] = "synthetic"
    frame.attrs["path"] = None
    return frame
