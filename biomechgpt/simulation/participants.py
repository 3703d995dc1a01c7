"""Simulated participants: demographics, diagnosis, severity, device, balance and fall history.

Each participant is drawn from their own random stream (`participant_rng`), so a cohort's participants do not depend
on how the work is split across processes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from biomechgpt.labels import ASSISTIVE_DEVICES, DIAGNOSES

__all__ = [
    "Participant",
    "DIAGNOSIS_MIX",
    "IMPAIRED_SEVERITY",
    "participant_rng",
    "draw_participant",
    "fall_probability",
]

# Share of each diagnosis in a cohort, roughly the mix of a rehabilitation gait lab with a control group.
DIAGNOSIS_MIX: dict[str, float] = {
    "healthy": 0.28,
    "stroke": 0.17,
    "parkinsons_disease": 0.14,
    "incomplete_sci": 0.09,
    "lower_limb_amputation": 0.08,
    "knee_osteoarthritis": 0.13,
    "cerebral_palsy": 0.11,
}
# Below this severity a diagnosed participant walks within normal limits and is labelled unimpaired.
IMPAIRED_SEVERITY = 0.15
# (min, max) age per diagnosis and the Beta(a, b) of severity.
_AGE = {"healthy": (20, 85), "stroke": (40, 88), "parkinsons_disease": (48, 88), "incomplete_sci": (20, 78),
        "lower_limb_amputation": (22, 80), "knee_osteoarthritis": (45, 85), "cerebral_palsy": (7, 40)}
_SEVERITY = {"stroke": (2.0, 2.2), "parkinsons_disease": (1.8, 2.4), "incomplete_sci": (2.0, 2.0),
             "lower_limb_amputation": (1.8, 2.2), "knee_osteoarthritis": (1.8, 2.6), "cerebral_palsy": (2.0, 2.0)}
# How strongly severity slows self-selected walking, and how much it costs balance.
_SLOWING = {"healthy": 0.0, "stroke": 0.65, "parkinsons_disease": 0.45, "incomplete_sci": 0.7,
            "lower_limb_amputation": 0.35, "knee_osteoarthritis": 0.35, "cerebral_palsy": 0.5}
_BALANCE_LOSS = {"healthy": 0.0, "stroke": 0.55, "parkinsons_disease": 0.65, "incomplete_sci": 0.6,
                 "lower_limb_amputation": 0.4, "knee_osteoarthritis": 0.2, "cerebral_palsy": 0.45}
_FALL_DIAGNOSIS_LOGIT = {"healthy": 0.0, "stroke": 0.4, "parkinsons_disease": 0.7, "incomplete_sci": 0.4,
                         "lower_limb_amputation": 0.3, "knee_osteoarthritis": 0.1, "cerebral_palsy": 0.2}
_DEVICE_SLOWING = {"none": 1.0, "cane": 0.88, "walker": 0.72, "bilateral_crutches": 0.8, "ankle_foot_orthosis": 0.95}


@dataclass
class Participant:
    """One simulated person. `style` holds their personal kinematic offsets (degrees) and amplitude scales."""

    index: int
    participant_id: str
    age: float
    sex: str
    height_m: float
    mass_kg: float
    leg_length_m: float
    diagnosis: str
    severity: float
    impaired: bool
    affected_side: str
    assistive_device: str
    balance_score: float
    fall_probability: float
    fall_history: bool
    self_selected_speed_m_s: float
    amputation_level: str | None = None  # transtibial / transfemoral
    pd_more_affected: str | None = None  # Parkinson's: the side with less arm swing
    style: dict = field(default_factory=dict)

    def row(self) -> dict:
        """The participants-table columns this class owns (outcomes and split are added by the simulator)."""
        data = asdict(self)
        data.pop("style")
        data.pop("index")
        for key in ("self_selected_speed_m_s", "balance_score", "amputation_level", "pd_more_affected"):
            data[f"gen_{key}"] = data.pop(key)
        return data


def participant_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of participant `index`: independent of cohort size, order and worker count."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(index,)))


def fall_probability(age: float, balance_score: float, severity: float, diagnosis: str) -> float:
    """Probability of at least one fall in the past year: logistic in age, balance and severity.

    Coefficients follow the direction and rough size of fall-risk models in older adults and neurological
    populations (age about +0.3 log-odds per decade; poor balance the strongest factor).
    """
    logit = (-1.5 + 0.03 * (age - 65.0) + 3.2 * (0.7 - balance_score) + 1.0 * severity
             + _FALL_DIAGNOSIS_LOGIT[diagnosis])
    return float(1.0 / (1.0 + np.exp(-logit)))


def _choose_device(rng: np.random.Generator, diagnosis: str, severity: float, age: float) -> str:
    s = severity
    weights = {d: 0.0 for d in ASSISTIVE_DEVICES}
    weights["none"] = 1.0
    if diagnosis == "healthy":
        weights["cane"] = 0.03 if age > 75 else 0.0
    elif diagnosis == "stroke":
        weights.update(cane=1.6 * s, walker=4.0 * max(s - 0.5, 0), ankle_foot_orthosis=0.8 * s)
    elif diagnosis == "parkinsons_disease":
        weights.update(cane=1.0 * s, walker=3.5 * max(s - 0.5, 0))
    elif diagnosis == "incomplete_sci":
        weights.update(cane=0.8 * s, walker=3.0 * max(s - 0.4, 0), bilateral_crutches=1.6 * s,
                       ankle_foot_orthosis=0.5 * s)
    elif diagnosis == "lower_limb_amputation":
        weights.update(cane=1.0 * s, bilateral_crutches=0.8 * max(s - 0.6, 0))
    elif diagnosis == "knee_osteoarthritis":
        weights.update(cane=1.6 * s, walker=1.0 * max(s - 0.7, 0))
    elif diagnosis == "cerebral_palsy":
        weights.update(ankle_foot_orthosis=1.4 * s, bilateral_crutches=1.2 * max(s - 0.4, 0),
                       walker=2.0 * max(s - 0.6, 0))
    if severity < IMPAIRED_SEVERITY:
        weights = {d: (1.0 if d == "none" else 0.0) for d in ASSISTIVE_DEVICES}
    names = list(weights)
    p = np.array([weights[d] for d in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def draw_participant(index: int, seed: int, n_digits: int = 4, *, diagnosis: str | None = None,
                     severity: float | None = None, max_age: float | None = None) -> Participant:
    """Draws participant `index` of the cohort with seed `seed`.

    `diagnosis`, `severity` and `max_age` pin those attributes (the realism report uses them to draw, say, severe
    cerebral palsy or young runners); everything else is drawn as usual.
    """
    rng = participant_rng(seed, index)
    names = list(DIAGNOSIS_MIX)
    drawn = names[int(rng.choice(len(names), p=np.array(list(DIAGNOSIS_MIX.values()))))]
    if diagnosis is not None and diagnosis not in DIAGNOSES:
        raise ValueError(f"unknown diagnosis {diagnosis!r}; choose from {', '.join(DIAGNOSES)}")
    diagnosis = drawn if diagnosis is None else diagnosis
    lo, hi = _AGE[diagnosis]
    age = float(rng.uniform(lo, hi)) if diagnosis != "healthy" else float(np.clip(rng.normal(52, 18), lo, hi))
    if max_age is not None:
        age = min(age, lo + (age - lo) * (max_age - lo) / (hi - lo))
    sex = "female" if rng.uniform() < (0.45 if diagnosis in ("stroke", "parkinsons_disease", "incomplete_sci",
                                                              "lower_limb_amputation") else 0.55) else "male"
    adult_height = rng.normal(1.77, 0.07) if sex == "male" else rng.normal(1.63, 0.065)
    adult_height -= 0.0015 * max(age - 60.0, 0.0)  # height loss with age, about 1.5 cm per decade after 60
    if age < 18:
        # Growth: roughly 1.15 m at 7 years to adult height at 18.
        adult_height = 1.15 + (adult_height - 1.15) * (age - 7.0) / 11.0
    height = float(np.clip(adult_height, 1.05, 2.05))
    bmi = float(np.clip(rng.normal(26.5 if age >= 18 else 18.0, 4.0 if age >= 18 else 2.5), 14.0, 45.0))
    mass = bmi * height**2
    leg_length = float(height * rng.normal(0.530, 0.012))

    if diagnosis == "healthy":
        severity, side = 0.0, "none"
    else:
        a, b = _SEVERITY[diagnosis]
        drawn_severity = float(rng.beta(a, b))
        severity = drawn_severity if severity is None else float(severity)
        if diagnosis in ("stroke", "lower_limb_amputation"):
            side = "left" if rng.uniform() < 0.5 else "right"
        elif diagnosis in ("parkinsons_disease", "incomplete_sci"):
            side = "bilateral"
        elif diagnosis == "knee_osteoarthritis":
            side = ("left", "right", "bilateral")[int(rng.choice(3, p=[0.3, 0.3, 0.4]))]
        else:  # cerebral palsy: diplegia (bilateral) or hemiplegia
            side = "bilateral" if rng.uniform() < 0.6 else ("left" if rng.uniform() < 0.5 else "right")
    impaired = bool(diagnosis != "healthy" and severity >= IMPAIRED_SEVERITY)
    device = _choose_device(rng, diagnosis, severity, age)

    # Balance: 1 = excellent. Declines with age and with the diagnosis's severity; a person-level random part
    # makes falls only partly predictable from the observable motion.
    balance = float(np.clip(1.0 - 0.007 * max(age - 45.0, 0.0) - _BALANCE_LOSS[diagnosis] * severity
                            + rng.normal(0, 0.08), 0.05, 1.0))
    p_fall = fall_probability(age, balance, severity, diagnosis)
    fell = bool(rng.uniform() < p_fall)

    # Self-selected walking speed: Bohannon (1997) norms, about 1.4 m/s in young adults falling ~0.1 m/s per decade
    # after 50; scaled with leg length by dynamic similarity; slowed by the condition and by the device.
    if age < 18:
        base = 1.25 + 0.01 * (age - 7)
    else:
        base = 1.42 - 0.009 * max(age - 50.0, 0.0)
    base *= np.sqrt(leg_length / 0.9) if age >= 18 else 1.0
    speed = base * (1.0 - _SLOWING[diagnosis] * severity) * _DEVICE_SLOWING[device] * rng.normal(1.0, 0.08)
    speed = float(np.clip(speed, 0.18, 1.9))

    style = {
        # Person-specific joint offsets and excursion scales: anatomy, habit and marker/keypoint placement.
        "offset": {name: float(rng.normal(0, sd)) for name, sd in (
            ("hip_flexion", 3.0), ("hip_adduction", 1.5), ("hip_rotation", 4.0), ("knee_angle", 2.5),
            ("ankle_angle", 2.5), ("subtalar_angle", 2.0), ("mtp_angle", 2.0), ("pelvis_tilt", 3.0),
            ("pelvis_list", 0.8), ("lumbar_extension", 3.0), ("lumbar_bending", 1.0), ("lumbar_rotation", 1.5),
            ("arm_flex", 3.0), ("arm_add", 3.0), ("arm_rot", 5.0), ("elbow_flex", 5.0), ("pro_sup", 6.0))},
        "side_offset": {name: float(rng.normal(0, 1.0)) for name in ("hip_flexion", "knee_angle", "ankle_angle")},
        "hip_scale": float(rng.normal(1.0, 0.07)),
        "knee_scale": float(rng.normal(1.0, 0.06)),
        "ankle_scale": float(rng.normal(1.0, 0.1)),
        "arm_swing": float(np.clip(rng.normal(1.0, 0.25), 0.4, 1.6)),
        "stride_cv": float(rng.uniform(0.012, 0.025)),
        "stance_fraction": float(rng.normal(0.6, 0.012)),
        "cadence_bias": float(rng.normal(1.0, 0.04)),  # people walk the same speed with longer or shorter steps
    }
    amputation_level = None
    if diagnosis == "lower_limb_amputation":
        amputation_level = "transfemoral" if rng.uniform() < 0.35 else "transtibial"
    pd_side = None
    if diagnosis == "parkinsons_disease":
        pd_side = "left" if rng.uniform() < 0.5 else "right"

    return Participant(
        index=index,
        participant_id=f"P{index:0{n_digits}d}",
        age=round(age, 1),
        sex=sex,
        height_m=round(height, 3),
        mass_kg=round(float(mass), 1),
        leg_length_m=round(leg_length, 3),
        diagnosis=diagnosis,
        severity=round(severity, 3),
        impaired=impaired,
        affected_side=side,
        assistive_device=device,
        balance_score=round(balance, 3),
        fall_probability=round(p_fall, 4),
        fall_history=fell,
        self_selected_speed_m_s=round(speed, 3),
        amputation_level=amputation_level,
        pd_more_affected=pd_side,
        style=style,
    )
