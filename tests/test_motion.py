"""The `Motion` dataclass: validation, derived properties and the canonical constants."""

from __future__ import annotations

import numpy as np
import pytest

from biomechgpt.processing.motion import (
    ARM_COORDINATES,
    CANONICAL_COORDINATES,
    CANONICAL_FRAME_RATE,
    LUMBAR_COORDINATES,
    TRANSLATION_COORDINATES,
    Motion,
    MotionInputError,
)


def _motion(frames: int = 10, rate: float = 30.0, **kwargs) -> Motion:
    coords = ["hip_flexion_r", "knee_angle_r", "pelvis_ty"]
    values = np.arange(frames * 3, dtype=np.float64).reshape(frames, 3)
    return Motion(coords, values, rate, **kwargs)


def test_canonical_coordinate_set():
    assert len(CANONICAL_COORDINATES) == 33
    assert len(set(CANONICAL_COORDINATES)) == 33
    assert CANONICAL_COORDINATES[:6] == ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty",
                                         "pelvis_tz")
    assert CANONICAL_COORDINATES.index("knee_angle_r") < CANONICAL_COORDINATES.index("knee_angle_l")
    for group in (TRANSLATION_COORDINATES, ARM_COORDINATES, LUMBAR_COORDINATES):
        assert set(group) <= set(CANONICAL_COORDINATES)
    assert len(ARM_COORDINATES) == 10 and CANONICAL_FRAME_RATE == 30.0


def test_values_become_float32_and_mask_defaults_to_all_present():
    motion = _motion()
    assert motion.values.dtype == np.float32 and motion.values.flags["C_CONTIGUOUS"]
    assert motion.mask.dtype == bool and motion.mask.all()
    assert motion.present() == ["hip_flexion_r", "knee_angle_r", "pelvis_ty"]


def test_derived_properties():
    motion = _motion(frames=45, rate=30)
    assert motion.n_frames == 45
    assert motion.duration == pytest.approx(1.5)
    np.testing.assert_allclose(motion.time[:3], [0.0, 1 / 30, 2 / 30])
    np.testing.assert_array_equal(motion.column("knee_angle_r"), motion.values[:, 1])
    assert not motion.is_canonical


def test_column_of_unknown_coordinate_raises_key_error():
    with pytest.raises(KeyError, match="wrist_flex_r"):
        _motion().column("wrist_flex_r")


def test_present_respects_mask():
    motion = _motion(mask=[True, False, True])
    assert motion.present() == ["hip_flexion_r", "pelvis_ty"]


def test_slice_frames_copies():
    motion = _motion(frames=10, mask=[True, False, True], meta={"source": "x"})
    part = motion.slice_frames(2, 5)
    assert part.n_frames == 3
    np.testing.assert_array_equal(part.values, motion.values[2:5])
    part.values[0, 0] = -1.0
    part.mask[0] = False
    part.meta["source"] = "y"
    assert motion.values[2, 0] != -1.0 and motion.mask[0] and motion.meta["source"] == "x"


def test_canonical_motion_is_canonical():
    values = np.zeros((30, len(CANONICAL_COORDINATES)))
    assert Motion(list(CANONICAL_COORDINATES), values, CANONICAL_FRAME_RATE).is_canonical
    assert not Motion(list(CANONICAL_COORDINATES), values, 60.0).is_canonical


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"values": np.zeros(5)}, "must be 2-D"),
        ({"values": np.zeros((5, 2))}, "2 columns but 3 coordinate names"),
        ({"coordinates": ["a", "a", "b"]}, "duplicate coordinate names"),
        ({"frame_rate": 0.0}, "frame_rate must be a positive number"),
        ({"frame_rate": float("nan")}, "frame_rate must be a positive number"),
        ({"frame_rate": "fast"}, "frame_rate must be a positive number"),
        ({"mask": [True, False]}, "mask must have one entry per coordinate"),
        ({"values": np.array([["a", "b", "c"]])}, "values must be numbers"),
    ],
)
def test_bad_construction_raises_one_line_motion_input_error(kwargs, fragment):
    args = {"coordinates": ["a", "b", "c"], "values": np.zeros((5, 3)), "frame_rate": 30.0,
            "meta": {"source": "t.mot"}}
    args.update(kwargs)
    with pytest.raises(MotionInputError, match=fragment) as info:
        Motion(**args)
    assert "\n" not in str(info.value) and str(info.value).startswith("t.mot: ")
    assert isinstance(info.value, ValueError)


def test_printing_a_motion_summarises_it_instead_of_dumping_its_frames():
    from test_train_helpers import make_motion

    motion = make_motion(frames=900)
    motion.mask[:3] = False
    text = repr(motion)
    assert text == "Motion(frames=900, duration_s=30.00, frame_rate=30, coordinates=30 of 33 recorded)"
    assert str(motion) == text


def test_mirror_image_swaps_the_sides_and_signs_the_lateral_rotations():
    from biomechgpt.processing.motion import MIRROR_ORDER, MIRROR_SIGN

    rng = np.random.default_rng(0)
    mask = np.ones(len(CANONICAL_COORDINATES), bool)
    mask[CANONICAL_COORDINATES.index("arm_flex_l")] = False
    motion = Motion(list(CANONICAL_COORDINATES), rng.normal(size=(20, len(CANONICAL_COORDINATES))), 30.0, mask,
                    {"source": "x.mot"})
    image = motion.mirrored()
    assert image.meta["mirrored"] and not motion.meta.get("mirrored")
    np.testing.assert_array_equal(image.column("knee_angle_r"), motion.column("knee_angle_l"))
    np.testing.assert_array_equal(image.column("hip_adduction_l"), motion.column("hip_adduction_r"))
    np.testing.assert_array_equal(image.column("pelvis_list"), -motion.column("pelvis_list"))
    np.testing.assert_array_equal(image.column("pelvis_tz"), -motion.column("pelvis_tz"))
    np.testing.assert_array_equal(image.column("lumbar_extension"), motion.column("lumbar_extension"))
    assert image.present() == [c for c in CANONICAL_COORDINATES if c != "arm_flex_r"]
    np.testing.assert_array_equal(image.mirrored().values, motion.values)  # an involution
    assert sorted(MIRROR_ORDER) == list(range(len(CANONICAL_COORDINATES))) and set(MIRROR_SIGN) == {1.0, -1.0}
    with pytest.raises(MotionInputError, match="only a canonical motion can be mirrored"):
        Motion(["knee_angle_r"], np.zeros((3, 1)), 30.0).mirrored()
