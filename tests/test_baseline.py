"""The non-LLM baseline: gait features measure what they claim, and both families learn the synthetic tasks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_evaluation_fakes import fake_trials, synthetic_motion

from biomechgpt.evaluation.baseline import BaselineSettings, NonLLMBaseline, feature_names, gait_features
from biomechgpt.metrics import compute_task_metrics
from biomechgpt.processing.motion import Motion, MotionInputError

pytest.importorskip("sklearn")


@pytest.mark.parametrize(("cadence", "speed", "duration"), [(100.0, 1.0, 8.0), (116.0, 1.4, 3.0), (170.0, 3.0, 6.0)])
def test_gait_features_recover_cadence_and_speed(cadence, speed, duration):
    motion = synthetic_motion("running" if cadence > 150 else "walking", cadence, speed, duration, seed=3)
    f = dict(zip(feature_names(), gait_features(motion)))
    assert f["cadence_acf_steps_min"] == pytest.approx(cadence, rel=0.06)
    assert f["cadence_events_steps_min"] == pytest.approx(cadence, rel=0.06)
    assert f["cadence_fft_steps_min"] == pytest.approx(cadence, rel=0.1)
    assert f["speed_net_m_s"] == pytest.approx(speed, rel=0.05)
    assert f["stride_length_est_m"] == pytest.approx(speed * 120 / cadence, rel=0.12)
    assert f["duration_s"] == pytest.approx(duration, abs=0.05)
    assert abs(f["knee_angle_rom_asymmetry"]) < 0.05  # the synthetic gait is symmetric


def test_gait_features_are_finite_for_still_and_tiny_motions():
    still = synthetic_motion("standing_balance", 100.0, 0.0, 2.0, seed=0)
    tiny = still.slice_frames(0, 3)
    for motion in (still, tiny):
        features = gait_features(motion)
        assert features.shape == (len(feature_names()),) and np.all(np.isfinite(features))


def test_gait_features_reject_non_canonical_motion():
    raw = Motion(["knee_angle_r"], np.zeros((10, 1)), 100.0, meta={"source": "x.mot"})
    with pytest.raises(MotionInputError, match="x.mot: the motion descriptors read only a canonical Motion"):
        gait_features(raw)


@pytest.fixture(scope="module")
def fitted():
    trials, motions = fake_trials(seed=0)
    train, validation = {}, {}
    for split, target in (("train", train), ("validation", validation)):
        rows = trials[trials.split == split]
        walking = rows[rows.activity == "walking"]
        target["activity"] = (list(rows.trial_id), list(rows.activity))
        target["cadence"] = (list(walking.trial_id), list(walking.cadence_steps_per_min))
    baseline = NonLLMBaseline(BaselineSettings.quick(seed=0)).fit(train, motions.__getitem__, validation)
    return baseline, trials, motions


def test_baseline_families_learn_activity_and_cadence(fitted):
    baseline, trials, motions = fitted
    test = trials[trials.split == "test"]
    walking = test[test.activity == "walking"]
    for family in ("gbt", "cnn"):
        labels, conf = baseline.predict_trials("activity", list(test.trial_id), motions.__getitem__, family)
        scores = compute_task_metrics("activity", labels, list(test.activity), conf)
        assert scores["accuracy"] >= 0.9, family
        assert all(0.0 <= c <= 1.0 for c in conf)
    values, conf = baseline.predict_trials("cadence", list(walking.trial_id), motions.__getitem__, "gbt")
    assert conf is None
    assert compute_task_metrics("cadence", values, list(walking.cadence_steps_per_min))["mae"] < 6.0
    summary = baseline.summary()
    assert summary["activity"]["selected"] in ("gbt", "cnn")
    assert set(summary["cadence"]["validation"]) == {"gbt", "cnn"}


def test_baseline_predict_on_new_motion_and_errors(fitted):
    baseline, _, _ = fitted
    labels, conf = baseline.predict("activity", [synthetic_motion("running", 170.0, 3.0, 5.0, seed=99)], "gbt")
    assert labels == ["running"] and conf[0] > 0.5
    with pytest.raises(ValueError, match="not trained for task 'diagnosis'"):
        baseline.predict("diagnosis", [])
    with pytest.raises(ValueError, match="families"):
        BaselineSettings(families=("svm",))


def test_baseline_is_deterministic_for_a_seed():
    trials, motions = fake_trials({"train": 18, "test": 6}, seed=1)
    train = trials[trials.split == "train"]
    data = {"activity": (list(train.trial_id), list(train.activity))}
    settings = BaselineSettings(gbt_max_iter=10, cnn_steps=5, cnn_channels=8, cnn_batch_size=8, seed=4)
    ids = list(trials[trials.split == "test"].trial_id)
    runs = []
    for _ in range(2):
        baseline = NonLLMBaseline(settings).fit(data, motions.__getitem__)
        runs.append([baseline.predict_trials("activity", ids, motions.__getitem__, f) for f in ("gbt", "cnn")])
    assert runs[0] == runs[1]
    assert not math.isnan(runs[0][1][1][0])
