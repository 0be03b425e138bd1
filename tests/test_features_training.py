"""features.py, training.py and ``python -m course_lib train``.

Synthetic months (course_lib.ml.data.make_synthetic_month) for everything but the
last test, which reproduces the 2023 figure and the README's fast-mode figure on the
real Jan/Feb 2023 files (the ``real_month_files`` fixture, conftest.py); it runs in
the normal suite (~10-90 s). No test measures speed: the bench does
(``python -m course_lib.tooling.bench``).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.linear_model import LinearRegression
from sklearn.metrics import root_mean_squared_error

from course_lib.ml import data, training
from course_lib import paths
from course_lib.__main__ import main as cli_main
from course_lib.ml.data import DataError
from course_lib.ml.features import (
    CATEGORICAL,
    MODES,
    NUMERICAL,
    TARGET,
    Preprocessor,
    fit_preprocessor,
    prepare_trips,
)
from tests.helpers import oserror_where_permissions_apply, read_only_folder

REFERENCE_RMSE = 5.19931  # the 2023 course, Jan -> Feb 2023 (5.199312466828839)
FAST_RMSE = 4.97948  # README, "Measured": fast mode on the same months


@pytest.fixture(autouse=True)
def _workdir(tmp_path, monkeypatch):
    """Nothing a test writes lands in the repository's work/ folder."""
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")


def trips(rows):
    """A small green-taxi frame: (pickup, dropoff, PU, DO, distance) tuples."""
    frame = pd.DataFrame(rows, columns=["lpep_pickup_datetime", "lpep_dropoff_datetime",
                                        "PULocationID", "DOLocationID", "trip_distance"])
    for column in ("lpep_pickup_datetime", "lpep_dropoff_datetime"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


@pytest.fixture(scope="module")
def synthetic_months():
    return data.make_synthetic_month(2023, 1), data.make_synthetic_month(2023, 2)


# -- prepare_trips ----------------------------------------------------------------
def test_prepare_trips_durations_filter_and_pu_do():
    raw = trips([
        ("2023-01-01 10:00:00", "2023-01-01 10:00:30", 1, 2, 0.1),   # 0.5 min: dropped
        ("2023-01-01 10:00:00", "2023-01-01 10:01:00", 43, 151, 0.3),  # 1 min: kept (edge)
        ("2023-01-01 10:00:00", "2023-01-01 10:30:30", 74, 75, 2.5),   # 30.5 min
        ("2023-01-01 10:00:00", "2023-01-01 11:00:00", 166, 166, 9.0),  # 60 min: kept (edge)
        ("2023-01-01 10:00:00", "2023-01-01 11:00:01", 7, 8, 20.0),    # 60.0167 min: dropped
        ("2023-01-01 10:00:00", "2023-01-01 09:50:00", 9, 10, 1.0),    # negative: dropped
    ])
    before = raw.copy()
    out = prepare_trips(raw)

    assert out[TARGET].tolist() == [1.0, 30.5, 60.0]
    assert out["PU_DO"].tolist() == ["43_151", "74_75", "166_166"]
    assert out["PULocationID"].tolist() == ["43", "74", "166"]
    assert out["trip_distance"].tolist() == [0.3, 2.5, 9.0]
    assert CATEGORICAL == ["PU_DO"] and NUMERICAL == ["trip_distance"] and TARGET == "duration"
    pd.testing.assert_frame_equal(raw, before)  # the input is left alone
    pd.testing.assert_frame_equal(prepare_trips(out), out)  # idempotent


def test_prepare_trips_no_trips_left_is_a_data_error():
    raw = trips([("2023-01-01 10:00:00", "2023-01-01 10:00:10", 1, 2, 0.0),
                 ("2023-01-01 10:00:00", "2023-01-01 12:00:00", 1, 2, 30.0)])
    with pytest.raises(DataError, match="no trips left after keeping 1-60 minute durations.*check the file/month"):
        prepare_trips(raw)
    with pytest.raises(DataError, match="empty"):
        prepare_trips(raw.iloc[0:0])


# -- the preprocessor ------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_preprocessor_is_fitted_on_train_only(mode, tmp_path):
    train = prepare_trips(trips([
        ("2023-01-01 10:00", "2023-01-01 10:10", 1, 2, 1.0),
        ("2023-01-01 10:00", "2023-01-01 10:20", 3, 4, 2.0),
        ("2023-01-01 10:00", "2023-01-01 10:30", 1, 2, 3.0),
    ]))
    val = prepare_trips(trips([
        ("2023-02-01 10:00", "2023-02-01 10:10", 3, 4, 1.5),
        ("2023-02-01 10:00", "2023-02-01 10:10", 9, 9, 4.0),  # PU_DO 9_9 never seen in training
    ]))
    pre = fit_preprocessor(train, mode=mode)
    X_train, X_val = pre.transform(train), pre.transform(val)

    assert pre.n_features == 3  # 1_2, 3_4, trip_distance
    if mode == "reference":
        assert X_train.shape == (3, 3) and X_val.shape == (2, 3)
        assert pre.dv.feature_names_ == ["PU_DO=1_2", "PU_DO=3_4", "trip_distance"]
        assert X_val.toarray().tolist() == [[0.0, 1.0, 1.5], [0.0, 0.0, 4.0]]  # unseen pair: no one-hot
    else:
        assert X_train.shape == (3, 2) and X_val.shape == (2, 2)  # PU_DO (category), trip_distance
        assert pre.categories == ["1_2", "3_4"]
        assert list(X_val["PU_DO"].cat.categories) == ["1_2", "3_4"]
        assert X_val["PU_DO"].tolist()[0] == "3_4" and pd.isna(X_val["PU_DO"].iloc[1])  # unseen -> missing
        assert X_val["trip_distance"].tolist() == [1.5, 4.0]

    again = Preprocessor.load(pre.save(tmp_path / "preprocessor.b"))
    assert again.mode == mode and again.n_features == 3
    if mode == "reference":
        assert (again.transform(val) != X_val).nnz == 0
    else:
        pd.testing.assert_frame_equal(again.transform(val), X_val)


@pytest.mark.parametrize("mode", MODES)
def test_build_features_learns_the_categories_of_the_training_month_only_sorted(mode):
    # Pairs in the training month, first seen in an order that is not sorted ("10_2" sorts before "1_2").
    train = trips([
        ("2023-01-01 10:00", "2023-01-01 10:10", 3, 4, 1.0),
        ("2023-01-01 10:00", "2023-01-01 10:20", 1, 2, 2.0),
        ("2023-01-01 10:00", "2023-01-01 10:30", 10, 2, 3.0),
        ("2023-01-01 10:00", "2023-01-01 10:40", 3, 4, 4.0),
    ])
    val = trips([
        ("2023-02-01 10:00", "2023-02-01 10:10", 1, 2, 1.5),
        ("2023-02-01 10:00", "2023-02-01 10:10", 7, 7, 4.0),  # a pair never seen in training
    ])
    X_train, X_val, _, _, pre = training.build_features(train, val, mode=mode)
    if mode == "reference":
        assert pre.dv.feature_names_ == ["PU_DO=10_2", "PU_DO=1_2", "PU_DO=3_4", "trip_distance"]
        assert X_val.toarray().tolist() == [[0.0, 1.0, 0.0, 1.5], [0.0, 0.0, 0.0, 4.0]]
    else:
        assert pre.categories == ["10_2", "1_2", "3_4"]  # exactly the training month's, sorted
        assert list(X_train["PU_DO"].cat.categories) == list(X_val["PU_DO"].cat.categories) == pre.categories
        assert X_train["PU_DO"].cat.codes.tolist() == [2, 1, 0, 2]
        assert X_val["PU_DO"].tolist()[0] == "1_2" and pd.isna(X_val["PU_DO"].iloc[1])


def test_the_preprocessor_of_train_months_knows_the_training_months_pairs(synthetic_months):
    X_train, _, _, _, pre = training.build_features(*synthetic_months)
    pairs = prepare_trips(synthetic_months[0])["PU_DO"]
    assert pre.categories == sorted(set(pairs))
    assert set(pre.categories) != set(prepare_trips(synthetic_months[1])["PU_DO"])  # the months differ


def test_bad_mode_and_rounds_are_value_errors(synthetic_months):
    with pytest.raises(ValueError, match="'fast', 'reference'"):
        training.xgb_params("slow")
    with pytest.raises(ValueError, match="'fast', 'reference'"):
        training.build_features(*synthetic_months, mode="turbo")
    with pytest.raises(ValueError, match="'fast', 'reference'"):
        training.train_months("2023-01", "2023-02", source="synthetic", mode="exact")
    X = pd.DataFrame({"x": [1.0, 2.0]})
    for rounds in (0, -3):
        with pytest.raises(ValueError, match="num_boost_round"):
            training.train_booster(X, [1.0, 2.0], X, [1.0, 2.0], num_boost_round=rounds)
    with pytest.raises(ValueError, match="not fitted"):
        Preprocessor("fast").transform(synthetic_months[0])


def test_xgb_params():
    assert training.MODES == ("fast", "reference")
    ref = training.xgb_params("reference")
    assert ref == {
        "learning_rate": 0.09585355369315604, "max_depth": 30, "min_child_weight": 1.060597050922164,
        "objective": "reg:squarederror", "reg_alpha": 0.018060244040060163,
        "reg_lambda": 0.011658731377413597, "seed": 42, "tree_method": "exact", "base_score": 0.5,
    }
    assert training.default_rounds("reference") == 100 and training.EARLY_STOPPING_ROUNDS == 20
    fast = training.xgb_params()
    assert fast["tree_method"] == "hist" and fast["seed"] == 42
    fast["max_depth"] = 99  # a copy: callers cannot change the module's settings
    assert training.xgb_params("fast")["max_depth"] != 99


# -- models on synthetic months --------------------------------------------------
def test_fast_xgboost_beats_linear_regression_beats_the_mean(synthetic_months):
    df_train, df_val = synthetic_months
    X_train, X_val, y_train, y_val, _ = training.build_features(df_train, df_val, mode="reference")
    rmse_mean = root_mean_squared_error(y_val, np.full_like(y_val, y_train.mean()))
    linear = LinearRegression().fit(X_train, y_train)
    rmse_linear = root_mean_squared_error(y_val, linear.predict(X_val))

    X_train, X_val, y_train, y_val, pre = training.build_features(df_train, df_val)  # fast
    booster, rmse_fast = training.train_booster(X_train, y_train, X_val, y_val)

    assert rmse_fast < rmse_linear < rmse_mean, (rmse_fast, rmse_linear, rmse_mean)
    assert rmse_fast == pytest.approx(root_mean_squared_error(y_val, training.predict(booster, X_val)))
    assert 3 < rmse_fast < 6  # synthetic months are built to look like the real ones (~5 min)
    # deterministic: a second run gives the same model
    again, rmse_again = training.train_booster(X_train, y_train, X_val, y_val)
    assert rmse_again == rmse_fast
    np.testing.assert_array_equal(training.predict(again, X_val), training.predict(booster, X_val))


def test_save_model_writes_loadable_files(synthetic_months, tmp_path):
    X_train, X_val, y_train, y_val, pre = training.build_features(*synthetic_months)
    booster, _ = training.train_booster(X_train, y_train, X_val, y_val, num_boost_round=5)
    models = tmp_path / "models"

    saved = training.save_model(booster, pre, models_dir=models)
    assert saved == {"model": models / "model.json", "preprocessor": models / "preprocessor.b"}
    assert sorted(p.name for p in models.iterdir()) == ["model.json", "preprocessor.b"]  # no temp files left

    loaded = xgb.Booster()
    loaded.load_model(saved["model"])
    with open(saved["preprocessor"], "rb") as f_in:
        pre_loaded = pickle.load(f_in)
    assert isinstance(pre_loaded, Preprocessor) and pre_loaded.categories == pre.categories
    X = pre_loaded.transform(prepare_trips(synthetic_months[1]))
    np.testing.assert_array_equal(training.predict(loaded, X), training.predict(booster, X_val))

    booster2, pre2 = training.load_model(models)
    np.testing.assert_array_equal(training.predict(booster2, X_val), training.predict(booster, X_val))

    # the default folder is the course's work/models (COURSE_WORKDIR here)
    assert training.save_model(booster, pre)["model"] == paths.subdir("models") / "model.json"


def test_train_months_reports_what_it_did(synthetic_months, tmp_path):
    # a parquet path ("file") for training, a month that falls back to synthetic for validation; the
    # file stands in for a real TLC one: without the frame's attrs, which would mark it synthetic
    path = tmp_path / "green_tripdata_2023-01.parquet"
    as_tlc_file = synthetic_months[0].copy()
    as_tlc_file.attrs = {}
    as_tlc_file.to_parquet(path)
    result = training.train_months(str(path), "2023-02", num_boost_round=3,
                                   data_dir=tmp_path / "empty", models_dir=tmp_path / "models")
    assert result.source == "file+synthetic"
    assert result.mode == "fast" and result.rounds == 3 and result.best_iteration <= 2
    assert result.n_train == len(prepare_trips(synthetic_months[0]))
    assert result.n_val == len(prepare_trips(synthetic_months[1]))
    # the RMSE is the one of the same training done step by step on the same frames
    X_train, X_val, y_train, y_val, _ = training.build_features(*synthetic_months)
    booster, rmse = training.train_booster(X_train, y_train, X_val, y_val, num_boost_round=3)
    assert result.rmse == rmse and result.best_iteration == booster.best_iteration
    # and the saved model is that model
    saved, _ = training.load_model(tmp_path / "models")
    np.testing.assert_array_equal(training.predict(saved, X_val), training.predict(booster, X_val))
    assert os.path.isfile(result.model_path) and os.path.isfile(result.preprocessor_path)
    assert set(result.to_dict()) == {"rmse", "n_train", "n_val", "seconds", "source", "mode", "rounds",
                                     "model_path", "preprocessor_path", "best_iteration"}


# -- the command line --------------------------------------------------------------
def run_cli(*args, tmp_path):
    env = {**os.environ, "COURSE_WORKDIR": str(tmp_path / "work"), "COURSE_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "course_lib", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)


@pytest.mark.parametrize("mode", MODES)
def test_cli_json_prints_one_object_with_train_months_result(tmp_path, mode):
    flags = ["--reference"] if mode == "reference" else []
    rounds = 1 if mode == "reference" else 3  # a reference round is slow (depth-30 exact trees)
    proc = run_cli("train", "--train", "2023-01", "--val", "2023-02", "--source", "synthetic",
                   "--rounds", str(rounds), "--json", *flags, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1  # exactly one line: the JSON object
    result = json.loads(proc.stdout)
    assert result["source"] == "synthetic" and result["mode"] == mode and result["rounds"] == rounds
    assert result["model_path"].startswith(str(tmp_path / "work"))
    assert "synthetic" in proc.stderr  # the loader's source lines went to stderr
    # the same computation as train_months for the same months, source, mode and rounds
    expected = training.train_months("2023-01", "2023-02", source="synthetic", mode=mode, num_boost_round=rounds,
                                     models_dir=tmp_path / "in-process").to_dict()
    differs = {"seconds", "model_path", "preprocessor_path"}
    assert {k: v for k, v in result.items() if k not in differs} == {k: v for k, v in expected.items() if k not in differs}
    assert set(result) == set(expected)


def test_fast_and_reference_are_different_models(synthetic_months):
    """As documented: reference = the 2023 DictVectorizer + exact trees, fast = native categories + hist."""
    results = {}
    for mode in MODES:
        X_train, X_val, y_train, y_val, pre = training.build_features(*synthetic_months, mode=mode)
        booster, rmse = training.train_booster(X_train, y_train, X_val, y_val, mode=mode, num_boost_round=1)
        config = json.loads(booster.save_config())["learner"]["gradient_booster"]["tree_train_param"]
        results[mode] = (rmse, config, type(X_train).__name__)
    assert results["reference"][1]["max_depth"] == "30" and results["fast"][1]["max_depth"] == "6"
    assert results["reference"][2] == "csr_matrix" and results["fast"][2] == "DataFrame"
    assert results["reference"][0] != results["fast"][0]


def test_cli_bad_month_exits_2_with_a_message(tmp_path):
    proc = run_cli("train", "--train", "2023-13", "--val", "2023-02", "--source", "synthetic",
                   tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "month 13" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_cli_human_output_and_errors_in_process(tmp_path, capsys):
    assert cli_main(["train", "--train", "2023-01", "--val", "2023-02", "--source", "synthetic",
                     "--rounds", "2", "--models-dir", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "source: synthetic" in out and "RMSE" in out and str(tmp_path / "m" / "model.json") in out
    assert cli_main(["train", "--train", "2023-01", "--val", "2023-02", "--rounds", "0"]) == 2
    assert "num_boost_round" in capsys.readouterr().err
    assert cli_main(["train", "--train", "nope.csv", "--val", "2023-02"]) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_a_models_dir_that_cannot_be_written_fails_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli_main(["train", "--train", "2023-01", "--val", "2023-02", "--source", "synthetic",
                     "--models-dir", str(blocker / "models")]) == 2
    said = capsys.readouterr()
    assert f"error: The models folder {blocker / 'models'} cannot be created or written" in said.err
    assert "Fix: pass a folder you can write to (--models-dir, models_dir=)" in said.err
    assert "synthetic" not in said.out + said.err  # no month was loaded, nothing trained


def test_a_read_only_models_dir_or_workdir_is_refused_with_the_fix(monkeypatch):
    def train_into(folder):
        training.train_months("2023-01", "2023-02", source="synthetic", models_dir=folder)

    def train_with_workdir(folder):
        monkeypatch.setenv("COURSE_WORKDIR", str(folder))
        training.train_months("2023-01", "2023-02", source="synthetic")

    with read_only_folder() as folder:
        for target in (folder, folder / "models"):  # an existing folder, and one to create inside it
            said = oserror_where_permissions_apply(train_into, target)
            assert said == (f"The models folder {target} cannot be created or written (Permission denied). "
                            "Fix: pass a folder you can write to (--models-dir, models_dir=), or leave it out "
                            "for work/models"), said
            said = oserror_where_permissions_apply(train_with_workdir, target)
            assert said == (f"The working folder (COURSE_WORKDIR={str(target)!r}) {target} cannot be created or "
                            "written (Permission denied). Fix: set COURSE_WORKDIR to a folder you can write to, or "
                            "unset it (default: work/ in the repository)"), said
        assert list(folder.iterdir()) == []


# -- the real 2023 months ----------------------------------------------------------
# The reference model on the real months takes ~30 s: trained once here, for the course's claim
# below and for the homework's check 10.3, the way that check trains it (months by name, "auto").
REFERENCE_CALL = (("2023-01", "2023-02"), {"source": "auto", "mode": "reference", "num_boost_round": None})


@pytest.fixture(scope="module")
def real_reference(real_month_files, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSE_DATA_DIR", str(real_month_files[1].parent))  # "2023-01" + "auto" -> the real file
        args, kwargs = REFERENCE_CALL
        return training.train_months(*args, **kwargs, models_dir=tmp_path_factory.mktemp("reference"))


def test_real_2023_reference_reproduces_the_course_and_fast_is_at_least_as_accurate(tmp_path, real_month_files,
                                                                                    real_reference):
    train, val = str(real_month_files[1]), str(real_month_files[2])
    # the trips a model sees, counted from the raw files with pandas alone
    kept = []
    for path in (train, val):
        raw = pd.read_parquet(path, columns=["lpep_pickup_datetime", "lpep_dropoff_datetime"])
        minutes = (raw["lpep_dropoff_datetime"] - raw["lpep_pickup_datetime"]).dt.total_seconds() / 60
        kept.append(int(minutes.between(1, 60).sum()))
    assert kept == [65946, 62574]

    fast = training.train_months(train, val, mode="fast", models_dir=tmp_path / "fast")
    print(f"\nfast: RMSE {fast.rmse!r}")
    assert fast.source == "file" and (fast.n_train, fast.n_val) == tuple(kept)
    assert round(fast.rmse, 5) == FAST_RMSE  # the README's figure (fast mode is deterministic)

    reference = real_reference
    print(f"reference: RMSE {reference.rmse!r}")
    assert reference.source == "file" and (reference.n_train, reference.n_val) == tuple(kept)
    assert round(reference.rmse, 5) == REFERENCE_RMSE  # the 2023 course's figure, bit for bit
    assert fast.rmse <= reference.rmse  # "at least as accurate" (lesson 01, README)


def test_homework_question_3_on_the_real_files_gives_the_2023_answer(monkeypatch, real_month_files, real_reference):
    """Check 10.3's expected value on the real January/February 2023 files: the check trains the
    reference pipeline as REFERENCE_CALL does (the training is the fixture's, not repeated), which
    gives the 2023 homework's 5.19931; the comparison accepts it and refuses a wrong answer."""
    from course_lib.tooling.checks import NotYet, lesson10

    monkeypatch.setenv("COURSE_DATA_DIR", str(real_month_files[1].parent))
    monkeypatch.setattr(lesson10, "_EXPECTED", {})
    calls = []

    def train_months(*args, models_dir=None, **kwargs):
        calls.append((args, kwargs))
        return real_reference

    monkeypatch.setattr(training, "train_months", train_months)
    expected = lesson10.reference_rmse("2023-01", "2023-02", "auto", None)
    assert calls == [REFERENCE_CALL]  # the check trains exactly what the fixture trained
    assert lesson10.reference_rmse("2023-01", "2023-02", "auto", None) == expected and len(calls) == 1  # cached
    assert abs(expected - lesson10.KNOWN_JAN_FEB) < lesson10.TOLERANCE, expected
    message = lesson10._compare(expected, expected, "2023-01", "2023-02", "auto", "file", None)
    assert "5.19931" in message and "real TLC files" in message
    with pytest.raises(NotYet, match="not the run's RMSE"):
        lesson10._compare(5.3, expected, "2023-01", "2023-02", "auto", "file", None)
    with pytest.raises(NotYet, match="mode 'reference'"):
        lesson10._compare(5.0, 5.0, "2023-01", "2023-02", "auto", "file", None)
