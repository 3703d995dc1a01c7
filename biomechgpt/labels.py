"""The closed label sets every stage shares: the simulator draws from them, the QA corpus asks about them, the model
ranks them and the metrics score them. Add a label here, never as a string literal elsewhere."""

from __future__ import annotations

__all__ = ["ACTIVITIES", "WALKING_SPEEDS", "DIAGNOSES", "ASSISTIVE_DEVICES", "AFFECTED_SIDES", "SPLITS"]

ACTIVITIES: tuple[str, ...] = (
    "walking",
    "running",
    "sit_to_stand",
    "squat",
    "jump",
    "stairs",
    "timed_up_and_go",
    "four_square_step_test",
    "standing_balance",
    "tandem_walking",
    "turning",
)
WALKING_SPEEDS: tuple[str, ...] = ("slow", "self_selected", "fast")
DIAGNOSES: tuple[str, ...] = (
    "healthy",
    "stroke",
    "parkinsons_disease",
    "incomplete_sci",
    "lower_limb_amputation",
    "knee_osteoarthritis",
    "cerebral_palsy",
)
ASSISTIVE_DEVICES: tuple[str, ...] = ("none", "cane", "walker", "bilateral_crutches", "ankle_foot_orthosis")
AFFECTED_SIDES: tuple[str, ...] = ("none", "left", "right", "bilateral")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
