"""Readers: real OpenSim files, format variants, unit and knee-sign handling, resampling, round trips, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _motion_files import BAD_CASES, gait_columns, write_csv, write_mot

from biomechgpt.motion_io import inspect_motion, load_motion, save_motion
from biomechgpt.processing.motion import CANONICAL_COORDINATES, Motion, MotionInputError

IDX = {name: i for i, name in enumerate(CANONICAL_COORDINATES)}


def _knee_deg(motion: Motion) -> np.ndarray:
    return np.degrees(motion.values[:, [IDX["knee_angle_r"], IDX["knee_angle_l"]]])


# ---------------------------------------------------------------------------------------------------------------------
# Real recordings from ../shared/reference_motion/
# ---------------------------------------------------------------------------------------------------------------------

# file: (source rate Hz, source duration s, knee peak flexion range in degrees, coordinates found)
REFERENCE = {
    "normal.mot": (50.0, 1.0, (55, 65), 17),
    "crouch1.mot": (118.0, 1.0, (65, 90), 17),
    "crouch2.mot": (100.0, 1.0, (55, 80), 17),
    "crouch3.mot": (100.0, 1.0, (40, 60), 17),
    "crouch4.mot": (100.0, 1.0, (60, 80), 17),
    "subject01_walk1_ik.mot": (60.0, 1.2, (60, 75), 23),
    "subject02_running_ik.mot": (60.0, 10.0, (95, 120), 33),
}


@pytest.mark.parametrize("filename", sorted(REFERENCE))
def test_reference_recordings_load_canonical(reference_motion_dir, filename):
    rate, duration, (peak_lo, peak_hi), n_found = REFERENCE[filename]
    motion = load_motion(reference_motion_dir / filename)
    assert motion.is_canonical and motion.values.dtype == np.float32
    assert motion.meta["source_frame_rate"] == pytest.approx(rate, rel=1e-3)
    # a span of `duration` s plus one source frame; the canonical grid covers the same span at 30 Hz
    assert motion.meta["source_duration_s"] == pytest.approx(duration, abs=0.05)
    assert motion.duration == pytest.approx(duration, abs=0.05)
    assert -1e-3 <= motion.n_frames - 1 - (motion.meta["source_duration_s"] - 1 / rate) * 30 < 1
    assert motion.meta["units"] == "degrees" and motion.meta["units_source"] == "header"
    # every file here is gait2392-family (flexion negative): converted to flexion positive
    assert motion.meta["knee_convention"] == "negative"
    knee = _knee_deg(motion)
    assert peak_lo < knee.max() < peak_hi
    assert np.median(knee) > 0 and knee.min() > -5
    assert len(motion.meta["coordinates_found"]) == n_found == int(motion.mask.sum())
    assert np.all(motion.values[:, ~motion.mask] == 0)
    assert np.isfinite(motion.values).all()
    # angles in radians: nothing a human joint does reaches 3.5 rad, pelvis height stays in meters
    angles = [i for i, c in enumerate(CANONICAL_COORDINATES) if c not in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]
    assert np.abs(motion.values[:, angles]).max() < 3.5
    assert 0.5 < motion.values[:, IDX["pelvis_ty"]].mean() < 1.5


def test_every_reference_file_is_covered(reference_motion_dir):
    on_disk = {p.name for p in reference_motion_dir.iterdir() if p.suffix in (".mot", ".sto", ".csv", ".npz")}
    assert on_disk <= set(REFERENCE), f"new reference files need expectations: {on_disk - set(REFERENCE)}"


def test_normal_gait_masks_missing_translations(reference_motion_dir):
    motion = load_motion(reference_motion_dir / "normal.mot")
    for name in ("pelvis_tx", "pelvis_tz", "subtalar_angle_r", "mtp_angle_l", "arm_flex_r"):
        assert not motion.mask[IDX[name]] and name in motion.meta["coordinates_missing"]
        assert not motion.values[:, IDX[name]].any()
    assert motion.mask[IDX["pelvis_ty"]] and motion.mask[IDX["lumbar_extension"]]
    # non-standard column order in the file: pelvis_list first; check a value lands in the right column
    assert np.degrees(motion.values[0, IDX["pelvis_list"]]) == pytest.approx(-0.47, abs=0.01)
    assert np.degrees(motion.values[0, IDX["hip_flexion_r"]]) == pytest.approx(24.61, abs=0.01)
    # swing-phase peak flexion ~58 degrees in the file (stored as -58.25)
    assert _knee_deg(motion).max() == pytest.approx(58.25, abs=1.5)


def test_running_keeps_arms_and_ignores_wrists(reference_motion_dir):
    motion = load_motion(reference_motion_dir / "subject02_running_ik.mot")
    assert motion.mask.all()
    assert motion.meta["columns_ignored"] == ["wrist_flex_r", "wrist_dev_r", "wrist_flex_l", "wrist_dev_l"]
    assert motion.n_frames == 300
    assert _knee_deg(motion).max() > 90


def test_inspect_motion_summary(reference_motion_dir):
    summary = inspect_motion(reference_motion_dir / "subject01_walk1_ik.mot")
    assert summary["source_frame_rate"] == 60.0 and summary["frame_rate"] == 30.0
    assert summary["source_n_frames"] == 73 and summary["n_frames"] == 37
    assert summary["duration_s"] == pytest.approx(1.2167, abs=1e-3)
    assert summary["coordinates_missing"][:2] == ["arm_flex_r", "arm_add_r"]
    assert len(summary["coordinates_found"]) == 23
    assert summary["units"] == "degrees" and summary["knee_convention"] == "negative"
    assert summary["columns_ignored"] == [] and summary["interpolated"] == {}


# ---------------------------------------------------------------------------------------------------------------------
# Format variants
# ---------------------------------------------------------------------------------------------------------------------


def test_rajagopal_style_file(tmp_path):
    """Knee positive, extra knee_angle_r_beta column, 100 Hz, inDegrees=no, extra wrist column, subject named."""
    t, cols = gait_columns(100.0, 3.0, degrees=False)
    cols["knee_angle_r_beta"] = cols["knee_angle_r"] * 0.9
    cols["wrist_flex_r"] = 0.1 * np.sin(t)
    header = ["Coordinates", "version=1", f"nRows={len(t)}", "nColumns=14", "inDegrees=no", "subject=P017",
              "", "Units are S.I. units (second, meters, Newtons, ...)", "endheader"]
    motion = load_motion(write_mot(tmp_path / "rajagopal.mot", t, cols, header=header))
    assert motion.meta["source_frame_rate"] == 100.0 and motion.n_frames == 90
    assert motion.meta["units"] == "radians" and motion.meta["units_source"] == "header"
    assert motion.meta["knee_convention"] == "positive"
    assert motion.meta["columns_ignored"] == ["knee_angle_r_beta", "wrist_flex_r"]
    assert motion.meta["subject_id"] == "P017"
    assert motion.meta["header"]["inDegrees"] == "no"
    knee = _knee_deg(motion)[:, 0]
    assert 59 < knee.max() < 61 and 4 < knee.min() < 6.5
    # the 30 Hz samples follow the 1 Hz source curve (the anti-alias filter leaves 1 Hz untouched)
    expected = 5.0 + 27.5 * (1 - np.cos(2 * np.pi * motion.time))
    np.testing.assert_allclose(knee, expected, atol=0.5)


@pytest.mark.parametrize("sep", ["\t", " ", "   "])
@pytest.mark.parametrize("suffix", [".mot", ".sto"])
def test_separators_and_suffixes(tmp_path, sep, suffix):
    t, cols = gait_columns(50.0, 1.0)
    reference = load_motion(write_mot(tmp_path / f"tab{suffix}", t, cols))
    motion = load_motion(write_mot(tmp_path / f"v{suffix}", t, cols, sep=sep))
    np.testing.assert_array_equal(motion.values, reference.values)


@pytest.mark.parametrize(
    "header",
    [
        ["endheader"],
        ["my trial", "nRows=50", "nColumns=12", "inDegrees=yes", "endheader"],
        ["free text line", "another: with a colon", "inDegrees = yes", "ENDHEADER"],
        [],  # no header at all: the column line starts with `time`
    ],
    ids=["bare", "no_version", "free_text", "none"],
)
def test_header_variants(tmp_path, header):
    t, cols = gait_columns(50.0, 1.0)
    motion = load_motion(write_mot(tmp_path / "h.mot", t, cols, header=header))
    assert motion.meta["source_frame_rate"] == 50.0
    assert motion.meta["units"] == "degrees"  # from the header, or detected where it has no inDegrees
    assert _knee_deg(motion).max() == pytest.approx(60, abs=1)


def test_opensim4_state_file_names(tmp_path):
    t, cols = gait_columns(50.0, 1.0, degrees=False)
    states = {f"/jointset/joint/{name}/value": values for name, values in cols.items()}
    states["/jointset/walker_knee_r/knee_angle_r/speed"] = np.zeros_like(t)
    motion = load_motion(write_mot(tmp_path / "states.sto", t, states, in_degrees="no"))
    assert motion.meta["coordinates_found"] == [c for c in CANONICAL_COORDINATES if c in cols]
    assert motion.meta["columns_ignored"] == ["/jointset/walker_knee_r/knee_angle_r/speed"]


def test_column_order_does_not_matter(tmp_path):
    t, cols = gait_columns(50.0, 1.0)
    shuffled = {name: cols[name] for name in reversed(list(cols))}
    a = load_motion(write_mot(tmp_path / "a.mot", t, cols))
    b = load_motion(write_mot(tmp_path / "b.mot", t, shuffled))
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.mask, b.mask)


def test_windows_line_endings_and_time_offset(tmp_path):
    t, cols = gait_columns(60.0, 1.0)
    path = write_mot(tmp_path / "crlf.mot", t + 12.5, cols)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    motion = load_motion(path)
    assert motion.meta["source_frame_rate"] == 60.0 and motion.n_frames == 30


def test_csv_with_time_column(tmp_path):
    t, cols = gait_columns(100.0, 2.0, degrees=False)
    motion = load_motion(write_csv(tmp_path / "trial.csv", t, cols))
    assert motion.meta["format"] == "csv" and motion.meta["source_frame_rate"] == 100.0
    assert motion.meta["units"] == "radians" and motion.meta["units_source"] == "detected"
    assert _knee_deg(motion).max() == pytest.approx(60, abs=1)


def test_csv_in_degrees_is_detected(tmp_path):
    t, cols = gait_columns(100.0, 2.0, degrees=True)
    motion = load_motion(write_csv(tmp_path / "trial.csv", t, cols))
    assert motion.meta["units"] == "degrees" and motion.meta["units_source"] == "detected"
    assert _knee_deg(motion).max() == pytest.approx(60, abs=1)


def test_csv_without_time_needs_frame_rate(tmp_path):
    _, cols = gait_columns(50.0, 2.0)
    path = write_csv(tmp_path / "no_time.csv", None, cols)
    motion = load_motion(path, frame_rate=50)
    assert motion.meta["source_frame_rate"] == 50.0 and motion.n_frames == 60


def test_csv_frame_rate_contradicting_time_column(tmp_path):
    t, cols = gait_columns(50.0, 2.0)
    with pytest.raises(MotionInputError, match="frame_rate=100 contradicts the time column"):
        load_motion(write_csv(tmp_path / "t.csv", t, cols), frame_rate=100)


def test_csv_empty_cells_are_short_gaps(tmp_path):
    t, cols = gait_columns(50.0, 2.0)
    path = write_csv(tmp_path / "gaps.csv", t, cols)
    lines = path.read_text().splitlines()
    cells = lines[11].split(",")
    cells[8] = ""  # knee_angle_r of data row 10
    lines[11] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    motion = load_motion(path)
    assert motion.meta["interpolated"] == {"knee_angle_r": 1}


def test_headerless_csv_with_named_coordinates(tmp_path):
    t, cols = gait_columns(50.0, 2.0)
    path = tmp_path / "plain.csv"
    np.savetxt(path, np.column_stack([t, cols["knee_angle_r"]]), delimiter=",")
    motion = load_motion(path, coordinates=["time", "knee_angle_r"], in_degrees=True)
    assert motion.present() == ["knee_angle_r"] and motion.meta["units_source"] == "argument"


def test_array_input(tmp_path):
    t, cols = gait_columns(100.0, 2.0, degrees=False, knee_sign=-1.0)
    names = list(cols)
    array = np.column_stack([cols[n] for n in names])
    motion = load_motion(array, coordinates=names, frame_rate=100)
    assert motion.meta["format"] == "array" and motion.meta["knee_convention"] == "negative"
    assert _knee_deg(motion).max() == pytest.approx(60, abs=1)
    in_degrees = array.copy()
    angles = [i for i, n in enumerate(names) if n not in ("pelvis_tx", "pelvis_ty")]
    in_degrees[:, angles] = np.degrees(in_degrees[:, angles])
    degrees = load_motion(in_degrees, coordinates=names, frame_rate=100, in_degrees=True)
    np.testing.assert_allclose(degrees.values, motion.values, atol=1e-6)
    expected = r"array: values are taken as radians \(SI\) but knee_angle_r reaches 60.* \(pass in_degrees=True\)"
    with pytest.raises(MotionInputError, match=expected):
        load_motion(in_degrees, coordinates=names, frame_rate=100)
    with pytest.raises(MotionInputError, match="in_degrees=True was given but every angle lies within"):
        load_motion(array, coordinates=names, frame_rate=100, in_degrees=True)
    with pytest.raises(MotionInputError, match="coordinates= .* is required"):
        load_motion(array, frame_rate=100)
    with pytest.raises(MotionInputError, match="frame_rate= is required"):
        load_motion(array, coordinates=names)
    with pytest.raises(MotionInputError, match="11 columns but 2 coordinate names"):
        load_motion(array, coordinates=names[:2], frame_rate=100)


def test_motion_input_is_idempotent(reference_motion_dir):
    once = load_motion(reference_motion_dir / "subject01_walk1_ik.mot")
    twice = load_motion(once)
    np.testing.assert_array_equal(twice.values, once.values)
    np.testing.assert_array_equal(twice.mask, once.mask)
    assert twice.meta["knee_convention"] == "positive"


def test_unsupported_source_type():
    with pytest.raises(MotionInputError, match="cannot load a motion from dict"):
        load_motion({"values": [1, 2]})


# ---------------------------------------------------------------------------------------------------------------------
# Knee sign, units, gaps, resampling
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sign, expected", [(1.0, "positive"), (-1.0, "negative")])
def test_knee_sign_detected_both_ways(tmp_path, sign, expected):
    t, cols = gait_columns(50.0, 2.0, knee_sign=sign)
    motion = load_motion(write_mot(tmp_path / "k.mot", t, cols))
    assert motion.meta["knee_convention"] == expected
    knee = _knee_deg(motion)
    assert knee.max() == pytest.approx(60, abs=1) and knee.min() > 4


def test_knee_hyperextension_does_not_fool_the_sign(tmp_path):
    t, cols = gait_columns(50.0, 2.0)
    for side in ("knee_angle_r", "knee_angle_l"):
        cols[side] = cols[side] - 12.0  # flexion still dominates: -7 .. 48 degrees
    motion = load_motion(write_mot(tmp_path / "hyper.mot", t, cols))
    assert motion.meta["knee_convention"] == "positive"
    assert _knee_deg(motion).min() == pytest.approx(-7, abs=1)


def test_knee_sign_undetermined_for_standing_and_overridable(tmp_path):
    t, cols = gait_columns(50.0, 2.0)
    cols["knee_angle_r"] = -3.0 + 0.5 * np.sin(t)
    cols["knee_angle_l"] = -2.0 + 0.5 * np.cos(t)
    path = write_mot(tmp_path / "standing.mot", t, cols)
    motion = load_motion(path)
    assert motion.meta["knee_convention"] == "undetermined"
    assert _knee_deg(motion).max() < 0  # kept as in the file
    forced = load_motion(path, knee_flexion="negative")
    assert forced.meta["knee_convention_source"] == "argument" and _knee_deg(forced).min() > 0
    with pytest.raises(MotionInputError, match="knee_flexion must be"):
        load_motion(path, knee_flexion="flexed")


def test_short_nan_gaps_are_interpolated_and_recorded(tmp_path):
    t, cols = gait_columns(50.0, 2.0)
    truth = load_motion(write_mot(tmp_path / "clean.mot", t, cols))
    cols["knee_angle_r"][40:44] = np.nan  # 0.08 s
    cols["hip_flexion_l"][:3] = np.inf  # at the start
    cols["ankle_angle_r"][:] = np.nan  # never recorded: treated as missing
    motion = load_motion(write_mot(tmp_path / "gappy.mot", t, cols))
    assert motion.meta["interpolated"] == {"hip_flexion_l": 3, "knee_angle_r": 4}
    assert motion.meta["coordinates_all_nan"] == ["ankle_angle_r"] and not motion.mask[IDX["ankle_angle_r"]]
    knee = IDX["knee_angle_r"]
    np.testing.assert_allclose(motion.values[:, knee], truth.values[:, knee], atol=math.radians(1.0))
    assert np.isfinite(motion.values).all()


def test_gap_limit_is_a_tenth_of_a_second(tmp_path):
    t, cols = gait_columns(100.0, 2.0)
    cols["knee_angle_r"][50:60] = np.nan  # 10 frames = 0.1 s: allowed
    assert load_motion(write_mot(tmp_path / "ok.mot", t, cols)).meta["interpolated"] == {"knee_angle_r": 10}
    cols["knee_angle_r"][60] = np.nan  # 11 frames: too long
    with pytest.raises(MotionInputError, match="11 NaN/inf values.*gap of 11 frames"):
        load_motion(write_mot(tmp_path / "bad.mot", t, cols))


def test_anti_alias_filter_removes_content_above_nyquist(tmp_path):
    rate = 120.0
    t = np.arange(int(rate * 4)) / rate
    slow = 30.0 * np.sin(2 * np.pi * 1.0 * t)
    noisy = slow + 5.0 * np.sin(2 * np.pi * 40.0 * t)  # would alias to 10 Hz at 30 Hz without the filter
    motion = load_motion(write_mot(tmp_path / "a.mot", t, {"hip_flexion_r": noisy, "knee_angle_r": 40 + slow}))
    hip = np.degrees(motion.column("hip_flexion_r"))
    expected = 30.0 * np.sin(2 * np.pi * motion.time)
    assert np.abs(hip - expected)[5:-5].max() < 0.1


def test_upsampling_and_irregular_time(tmp_path):
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.03, 0.05, 60))  # ~25 Hz with jitter
    angle = 20.0 * np.sin(2 * np.pi * 0.5 * t)
    motion = load_motion(write_mot(tmp_path / "jitter.mot", t, {"hip_flexion_r": angle, "knee_angle_r": angle + 30}))
    assert motion.n_frames == math.floor((t[-1] - t[0]) * 30 + 1e-6) + 1
    expected = 20.0 * np.sin(2 * np.pi * 0.5 * (t[0] + motion.time))
    np.testing.assert_allclose(np.degrees(motion.column("hip_flexion_r")), expected, atol=0.5)


def test_size_limit_is_configurable(tmp_path):
    t, cols = gait_columns(50.0, 2.0)
    path = write_mot(tmp_path / "m.mot", t, cols)
    size = path.stat().st_size
    assert load_motion(path, max_bytes=size).n_frames == 60
    with pytest.raises(MotionInputError, match="over the"):
        load_motion(path, max_bytes=size - 1)


# ---------------------------------------------------------------------------------------------------------------------
# Round trips through save_motion
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, atol", [(".npz", 0.0), (".csv", 0.0), (".mot", 2e-7), (".sto", 2e-7)])
def test_save_load_round_trip(reference_motion_dir, tmp_path, suffix, atol):
    motion = load_motion(reference_motion_dir / "normal.mot")
    path = save_motion(motion, tmp_path / f"normal{suffix}")
    again = load_motion(path)
    assert again.is_canonical
    np.testing.assert_array_equal(again.mask, motion.mask)
    np.testing.assert_allclose(again.values, motion.values, rtol=0, atol=atol)
    assert again.meta["knee_convention"] == "positive"
    if suffix == ".npz":
        np.testing.assert_array_equal(again.values, motion.values)


def test_saved_mot_is_rajagopal_style(tmp_path, reference_motion_dir):
    motion = load_motion(reference_motion_dir / "subject01_walk1_ik.mot")
    motion.meta["subject_id"] = "subject01"
    path = save_motion(motion, tmp_path / "out.mot")
    lines = path.read_text().splitlines()
    assert lines[1:5] == ["version=1", "nRows=37", "nColumns=24", "inDegrees=yes"]
    assert "endheader" in lines and lines[lines.index("endheader") + 1].split("\t")[:2] == ["time", "pelvis_tilt"]
    assert load_motion(path).meta["subject_id"] == "subject01"
    data = np.loadtxt(path, skiprows=lines.index("endheader") + 2)
    knee = data[:, 1 + motion.present().index("knee_angle_r")]
    assert knee.max() > 60  # degrees, flexion positive


def test_save_motion_rejects_unknown_suffix(tmp_path, reference_motion_dir):
    motion = load_motion(reference_motion_dir / "normal.mot")
    with pytest.raises(MotionInputError, match="cannot write '.txt'"):
        save_motion(motion, tmp_path / "x.txt")


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: one line naming the file and the problem
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_gets_one_line_error(tmp_path, case):
    case_id, build, fragment, kwargs = case
    path = build(tmp_path / f"{case_id}.mot") if case_id == "too_large" else build(tmp_path)
    with pytest.raises(MotionInputError) as info:
        load_motion(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message
    assert "Traceback" not in message and "numpy" not in message


def test_anti_alias_filter_matches_scipy_filtfilt():
    from scipy.signal import butter, sosfiltfilt

    from biomechgpt.motion_io import _low_pass

    rng = np.random.default_rng(0)
    t = np.arange(1000) / 100.0
    x = np.stack([np.sin(2 * np.pi * 1.3 * t) + 0.3 * t + 0.05 * rng.standard_normal(1000),
                  np.cos(2 * np.pi * 20 * t) + np.sin(2 * np.pi * 5 * t)], axis=1)
    ours = _low_pass(x, 100.0, 12.0)
    reference = sosfiltfilt(butter(4, 12.0, fs=100.0, output="sos"), x, axis=0)
    np.testing.assert_allclose(ours[50:-50], reference[50:-50], atol=1e-6)  # ends differ only by padding choice
    assert np.abs(ours - reference).max() < 0.02
