"""Gait patterns per diagnosis, severity and device: the `GaitSpec` a participant walks, runs or climbs with.

Each change follows the clinical description of the condition; its size grows with severity (0-1):
- stroke (affected side): stiff knee in swing, foot drop, circumduction and pelvic hike, shorter paretic stance,
  asymmetric step times, reduced and flexed arm on the paretic side;
- Parkinson's disease: short shuffling steps at a higher cadence, reduced joint excursions and heel strike, flexed
  trunk and knees, reduced (asymmetric) arm swing and pelvic rotation, more stride-to-stride variability;
- incomplete spinal cord injury: slow, variable steps, reduced knee flexion, steppage (extra hip flexion) and foot
  drop on both sides;
- lower-limb amputation (prosthetic side): stiff prosthetic ankle, reduced knee flexion (little or none in stance
  above the knee), circumduction and hike, shorter prosthetic stance;
- knee osteoarthritis (antalgic): shorter stance and reduced knee flexion on the painful side, flexion
  contracture, lateral trunk lean over the painful knee;
- cerebral palsy: crouch gait (blend towards the real crouch recordings), stiff knee, internal hip rotation;
- devices: walker (flexed trunk, arms forward and still, shorter steps), cane (held opposite the affected leg,
  advanced with it), bilateral crutches (arms moving together), ankle-foot orthosis (limited ankle motion).
"""

from __future__ import annotations

import numpy as np

from biomechgpt.simulation.kinematics import GaitSpec, LegMod, stride_length_for_speed
from biomechgpt.simulation.participants import Participant

__all__ = ["walking_speed", "gait_spec", "running_spec", "stairs_spec", "tandem_spec"]

_STRIDE_FACTOR = {"healthy": 1.0, "stroke": 0.12, "parkinsons_disease": 0.32, "incomplete_sci": 0.02,
                  "lower_limb_amputation": 0.0, "knee_osteoarthritis": 0.04, "cerebral_palsy": 0.08}


def walking_speed(p: Participant, condition: str, rng: np.random.Generator) -> float:
    """Speed (m/s) for a walking trial at `condition` (slow / self_selected / fast)."""
    v = p.self_selected_speed_m_s * rng.normal(1.0, 0.035)
    if condition == "slow":
        v *= rng.uniform(0.62, 0.8)
    elif condition == "fast":
        # Fast walking reserve shrinks with impairment (stroke survivors reach ~+20 %, healthy adults ~+35-45 %).
        v *= 1.0 + (0.42 - 0.3 * p.severity) * rng.uniform(0.8, 1.1)
    return float(np.clip(v, 0.15, 2.3))


def _sides(p: Participant) -> tuple[bool, bool]:
    """(right affected, left affected)."""
    return p.affected_side in ("right", "bilateral"), p.affected_side in ("left", "bilateral")


def _legs_for_diagnosis(p: Participant) -> tuple[LegMod, LegMod, dict]:
    s = p.severity
    style = p.style
    right_aff, left_aff = _sides(p)
    mods = {}
    trunk: dict = {}
    for side, aff in (("r", right_aff), ("l", left_aff)):
        m = LegMod(hip_scale=style["hip_scale"], knee_stance_scale=style["knee_scale"],
                   knee_swing_scale=style["knee_scale"], ankle_scale=style["ankle_scale"],
                   stance_fraction=style["stance_fraction"])
        d = p.diagnosis
        if d == "stroke":
            if aff:
                m.knee_swing_scale *= 1 - 0.6 * s
                m.knee_stance_scale *= 1 - 0.5 * s
                m.hip_scale *= 1 - 0.35 * s
                m.ankle_scale *= 1 - 0.45 * s
                m.ankle_swing_drop = 12 * s
                m.circumduction = 10 * s
                m.knee_offset = 3 * s
                m.stance_fraction -= 0.08 * s
            else:
                m.stance_fraction += 0.06 * s
                m.hip_scale *= 1 - 0.1 * s
        elif d == "parkinsons_disease":
            m.hip_scale *= 1 - 0.35 * s
            m.knee_swing_scale *= 1 - 0.3 * s
            m.knee_stance_scale *= 1 - 0.3 * s
            m.knee_offset = 7 * s
            m.hip_offset = 5 * s
            m.ankle_scale *= 1 - 0.45 * s
            m.ankle_offset = -3 * s
            m.mtp_scale = 1 - 0.6 * s
            m.stance_fraction += 0.04 * s
        elif d == "incomplete_sci":
            m.knee_swing_scale *= 1 - 0.4 * s
            m.swing_hip_lift = 10 * s
            m.ankle_swing_drop = 8 * s
            m.hip_scale *= 1 - 0.2 * s
            m.knee_offset = 5 * s
            m.stance_fraction += 0.05 * s
        elif d == "lower_limb_amputation":
            if aff:
                m.ankle_scale = 0.3
                m.mtp_scale = 0.1
                m.stance_fraction -= 0.04 + 0.03 * s
                if p.amputation_level == "transfemoral":
                    m.knee_stance_scale = 0.1
                    m.knee_swing_scale = 0.75 - 0.25 * s
                    m.circumduction = 5 + 6 * s
                else:
                    m.knee_stance_scale = 0.55 - 0.2 * s
                    m.knee_swing_scale = 0.95 - 0.15 * s
            else:
                m.stance_fraction += 0.03 + 0.03 * s
        elif d == "knee_osteoarthritis":
            if aff:
                m.knee_stance_scale *= 1 - 0.6 * s
                m.knee_swing_scale *= 1 - 0.3 * s
                m.knee_offset = 6 * s
                m.stance_fraction -= 0.05 * s
                m.hip_scale *= 1 - 0.15 * s
            else:
                m.stance_fraction += 0.03 * s
        elif d == "cerebral_palsy" and aff:
            m.crouch = float(np.clip(1.2 * s - 0.1, 0.0, 1.0))
            # Stiff knee in swing; the crouch recordings already show it, so only for the normal share.
            m.knee_swing_scale *= 1 - 0.35 * s * (1 - m.crouch)
            m.hip_scale *= 1 + 0.25 * m.crouch  # undo part of the slow-walking hip reduction the template has
            m.stance_fraction += 0.03 * s
        if p.assistive_device == "ankle_foot_orthosis" and (aff or p.affected_side == "bilateral"):
            m.ankle_scale *= 0.4
            m.ankle_swing_drop *= 0.2
            m.ankle_offset = 2.0
            m.mtp_scale *= 0.5
        m.stance_fraction = float(np.clip(m.stance_fraction, 0.45, 0.75))
        mods[side] = m

    d, s = p.diagnosis, p.severity
    if d == "stroke":
        trunk.update(hike_right=6 * s * right_aff, hike_left=6 * s * left_aff,
                     arm_swing_right=1 - 0.9 * s if right_aff else 1.0,
                     arm_swing_left=1 - 0.9 * s if left_aff else 1.0,
                     elbow_right=60 * s if right_aff else 0.0, elbow_left=60 * s if left_aff else 0.0,
                     # The paretic swing takes longer: the step onto the paretic foot lasts longer.
                     left_phase=0.5 + 0.06 * s * (1 if left_aff else -1))
    elif d == "parkinsons_disease":
        more_r = p.pd_more_affected == "right"
        trunk.update(trunk_flexion=18 * s, pelvis_rotation_scale=1 - 0.5 * s,
                     arm_swing_right=1 - (0.85 if more_r else 0.5) * s,
                     arm_swing_left=1 - (0.5 if more_r else 0.85) * s,
                     elbow_right=15 * s, elbow_left=15 * s)
    elif d == "incomplete_sci":
        trunk.update(trunk_flexion=6 * s, pelvis_list_scale=1 + 0.5 * s)
    elif d == "lower_limb_amputation":
        hike = (2 + 5 * s) if p.amputation_level == "transfemoral" else 1.5 * s
        lean = (3 + 4 * s) if p.amputation_level == "transfemoral" else 1.5 * s
        trunk.update(hike_right=hike * right_aff, hike_left=hike * left_aff,
                     trunk_lean_right_stance=lean * right_aff, trunk_lean_left_stance=lean * left_aff,
                     left_phase=0.5 + 0.03 * s * (1 if left_aff else -1))
    elif d == "knee_osteoarthritis":
        trunk.update(trunk_lean_right_stance=6 * s * right_aff, trunk_lean_left_stance=6 * s * left_aff,
                     left_phase=0.5 + (0.04 * s * (1 if left_aff else -1) if p.affected_side != "bilateral" else 0))
    elif d == "cerebral_palsy":
        trunk.update(trunk_flexion=5 * s, pelvis_list_scale=1 + 0.3 * s)
    if p.age > 65:
        mods["r"].hip_scale *= 1 - 0.004 * (p.age - 65)
        mods["l"].hip_scale *= 1 - 0.004 * (p.age - 65)
    return mods["r"], mods["l"], trunk


def _device_changes(p: Participant, trunk: dict) -> float:
    """Applies the device's trunk and arm changes; returns the stride-length factor it imposes."""
    device = p.assistive_device
    factor = 1.0
    if device == "walker":
        trunk["arm_mode"] = "walker"
        trunk["trunk_flexion"] = trunk.get("trunk_flexion", 0.0) + 15.0
        factor = 0.85
    elif device == "cane":
        # A cane is held in the hand opposite the affected leg.
        trunk["arm_mode"] = "cane_right" if p.affected_side in ("left", "bilateral", "none") else "cane_left"
        factor = 0.95
    elif device == "bilateral_crutches":
        trunk["arm_mode"] = "crutches"
        trunk["trunk_flexion"] = trunk.get("trunk_flexion", 0.0) + 8.0
        factor = 0.95
    return factor


def gait_spec(p: Participant, speed_m_s: float, rng: np.random.Generator) -> GaitSpec:
    """The walking `GaitSpec` of participant `p` at `speed_m_s` for one trial (with trial-to-trial variation)."""
    right, left, trunk = _legs_for_diagnosis(p)
    device_factor = _device_changes(p, trunk)
    stride = stride_length_for_speed(speed_m_s, p.leg_length_m) / p.style["cadence_bias"]
    stride *= (1.0 - _STRIDE_FACTOR[p.diagnosis] * p.severity) * device_factor * rng.normal(1.0, 0.02)
    s = p.severity
    variability = {"parkinsons_disease": 0.035, "incomplete_sci": 0.06, "stroke": 0.025, "cerebral_palsy": 0.03,
                   "lower_limb_amputation": 0.015, "knee_osteoarthritis": 0.01}.get(p.diagnosis, 0.0)
    stride_cv = p.style["stride_cv"] + variability * s + 0.01 * max(0.6 - p.balance_score, 0)
    amplitude_cv = 0.03 + 0.05 * variability / 0.06 * s
    arm = p.style["arm_swing"]
    trunk["arm_swing_right"] = trunk.get("arm_swing_right", 1.0) * arm
    trunk["arm_swing_left"] = trunk.get("arm_swing_left", 1.0) * arm
    return GaitSpec(template="walking", stride_time_s=stride / speed_m_s, stride_length_m=stride, right=right,
                    left=left, stride_cv=stride_cv, amplitude_cv=amplitude_cv, **trunk)


def running_spec(p: Participant, rng: np.random.Generator) -> GaitSpec:
    """Running at a comfortable jogging speed (only for participants who can run)."""
    speed = float(np.clip(rng.normal(3.1, 0.35) * (1 - 0.006 * max(p.age - 35, 0)) * (1 - 0.8 * p.severity),
                          1.9, 4.5))
    stride = stride_length_for_speed(speed, p.leg_length_m) / p.style["cadence_bias"] * rng.normal(1.0, 0.03)
    arm = p.style["arm_swing"]
    mod = LegMod(hip_scale=p.style["hip_scale"], knee_stance_scale=p.style["knee_scale"],
                 knee_swing_scale=p.style["knee_scale"], ankle_scale=p.style["ankle_scale"])
    return GaitSpec(template="running", stride_time_s=stride / speed, stride_length_m=stride, right=mod,
                    left=LegMod(**vars(mod)), stride_cv=0.6 * p.style["stride_cv"], amplitude_cv=0.03,
                    arm_swing_right=arm ** 0.5, arm_swing_left=arm ** 0.5)


def stairs_spec(p: Participant, up: bool, rng: np.random.Generator) -> GaitSpec:
    """Reciprocal stair climbing: one step of 0.28 m tread per foot; slower with impairment."""
    right, left, trunk = _legs_for_diagnosis(p)
    for m in (right, left):
        m.crouch = 0.0
        m.stance_fraction = None
    _device_changes(p, trunk)
    trunk.pop("left_phase", None)
    stride_time = float(np.clip(rng.normal(1.35, 0.1) * (1 + 1.2 * p.severity) * (1 + 0.005 * max(p.age - 50, 0)),
                                1.0, 4.0))
    return GaitSpec(template="stairs_up" if up else "stairs_down", stride_time_s=stride_time, stride_length_m=0.56,
                    right=right, left=left, stride_cv=p.style["stride_cv"] + 0.03 * p.severity, amplitude_cv=0.04,
                    **trunk)


def tandem_spec(p: Participant, rng: np.random.Generator) -> GaitSpec:
    """Heel-to-toe walking on a line: steps of one foot length, narrow base, slow, sway grows with poor balance."""
    spec = gait_spec(p, 0.5, rng)
    poor = 1.0 - p.balance_score
    foot = 0.152 * p.height_m
    spec.stride_length_m = 2 * foot * rng.normal(1.0, 0.03)
    spec.stride_time_s = float(np.clip(rng.normal(1.5, 0.12) * (1 + 1.0 * poor), 1.1, 4.0))
    for m in (spec.right, spec.left):
        m.hip_scale *= 0.55
        m.knee_swing_scale *= 0.8
        m.hip_adduction_offset += 4.0
        m.stance_fraction = float(np.clip((m.stance_fraction or 0.6) + 0.08, 0.5, 0.8))
    spec.pelvis_list_scale *= 1.3 + 1.5 * poor
    spec.stride_cv += 0.03 + 0.12 * poor
    spec.amplitude_cv += 0.03 + 0.1 * poor
    if poor > 0.35 and spec.arm_mode == "swing":
        spec.arm_mode = "balance"
    return spec
