"""Trials: which activities a participant performs, and the motion of each one.

Every activity is built from the layers in `kinematics`: postures joined by smooth keyframes (sitting, standing,
squatting, jumping), the gait layer (walking, running, stairs, tandem walking, the walking parts of the Timed Up and
Go) and the pelvis path. `synthesize_trial` then adds the person's offsets, markerless-style noise, a random heading
and start position, converts to canonical radians and masks the coordinates a lower-body model would not export.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from biomechgpt.processing.motion import CANONICAL_FRAME_RATE
from biomechgpt.simulation.kinematics import (
    ANGLE_COLUMNS,
    ARM_COLUMNS,
    IDX,
    LUMBAR_COLUMNS,
    N_COORDS,
    GaitSpec,
    Locomotion,
    compose_locomotion,
    pelvis_height,
    seated_pose,
    smooth_keyframes,
    smooth_noise,
    standing_pose,
)
from biomechgpt.simulation.participants import Participant
from biomechgpt.simulation.patterns import gait_spec, running_spec, stairs_spec, tandem_spec, walking_speed

__all__ = ["TrialPlan", "TrialMotion", "plan_trials", "synthesize_trial", "GAIT_ACTIVITIES"]

FS = CANONICAL_FRAME_RATE
GAIT_ACTIVITIES = ("walking", "running", "tandem_walking")


@dataclass
class TrialPlan:
    """What the protocol asks for: activity, speed condition, treadmill or not, which model exported it."""

    activity: str
    speed_condition: str | None = None
    treadmill: bool = False
    protocol: str = ""
    duration_s: float | None = None
    has_arms: bool = True
    has_lumbar: bool = True


@dataclass
class TrialMotion:
    """A synthesised trial: canonical values (frames, 33) float32 in radians/meters, the mask, generator values."""

    values: np.ndarray
    mask: np.ndarray
    gen: dict = field(default_factory=dict)


def plan_trials(p: Participant, rng: np.random.Generator) -> list[TrialPlan]:
    """The trials a participant performs: depends on diagnosis, severity, device, age and balance."""
    s, device = p.severity, p.assistive_device
    plans: list[TrialPlan] = [
        TrialPlan("walking", "self_selected", protocol="ten_meter_walk"),
        TrialPlan("walking", "self_selected", protocol="overground", duration_s=float(rng.uniform(12, 60))),
        TrialPlan("walking", "slow", protocol="overground", duration_s=float(rng.uniform(8, 30))),
    ]
    for _ in range(int(rng.integers(1, 4))):
        plans.append(TrialPlan("walking", "self_selected", protocol="lab_stride"))
    if rng.uniform() < 0.5:
        plans.append(TrialPlan("walking", "slow", protocol="lab_stride"))
    if s < 0.75 and device != "walker":
        plans.append(TrialPlan("walking", "fast", protocol="overground", duration_s=float(rng.uniform(6, 20))))
        if rng.uniform() < 0.5:
            plans.append(TrialPlan("walking", "fast", protocol="lab_stride"))
    if s < 0.7 and device not in ("walker", "bilateral_crutches") and rng.uniform() < 0.4:
        condition = str(rng.choice(["self_selected", "self_selected", "slow", "fast"]))
        plans.append(TrialPlan("walking", condition, treadmill=True, protocol="treadmill",
                               duration_s=float(rng.uniform(20, 60))))
    can_run = s < 0.2 and device == "none" and p.age < 65 and p.diagnosis != "lower_limb_amputation"
    if can_run and rng.uniform() < 0.8:
        if rng.uniform() < 0.5:
            plans.append(TrialPlan("running", treadmill=True, protocol="treadmill",
                                   duration_s=float(rng.uniform(10, 40))))
        else:
            plans.append(TrialPlan("running", protocol="overground", duration_s=float(rng.uniform(2.5, 8))))
    plans.append(TrialPlan("sit_to_stand", protocol="five_times_sit_to_stand"))
    if s < 0.65 and device != "walker":
        plans.append(TrialPlan("squat", protocol="repeated_squat"))
    if s < 0.25 and device == "none" and p.age < 70:
        plans.append(TrialPlan("jump", protocol="countermovement_jump"))
    if s < 0.85 and device != "walker":
        plans.append(TrialPlan("stairs", protocol=str(rng.choice(["ascent", "descent"]))))
    plans.append(TrialPlan("timed_up_and_go", protocol="timed_up_and_go"))
    if device != "walker" and s < 0.9:
        plans.append(TrialPlan("four_square_step_test", protocol="four_square_step_test"))
    plans.append(TrialPlan("standing_balance", protocol=str(rng.choice(["feet_apart", "feet_together",
                                                                         "semi_tandem"])),
                           duration_s=float(rng.uniform(15, 30))))
    if s < 0.6 and device in ("none", "ankle_foot_orthosis"):
        plans.append(TrialPlan("tandem_walking", protocol="tandem_walk"))
    plans.append(TrialPlan("turning", protocol="turn_360"))
    for plan in plans:
        u = rng.uniform()
        # Lower-body models (common in clinical gait labs) export neither arms nor lumbar coordinates.
        plan.has_arms = not (u < 0.3)
        plan.has_lumbar = not (u < 0.2)
    return plans


def _time(duration: float) -> np.ndarray:
    return np.arange(max(int(round(duration * FS)), 2)) / FS


def _stand(p: Participant) -> np.ndarray:
    crouch_knee = 0.0
    if p.diagnosis == "cerebral_palsy":
        crouch_knee = 25.0 * float(np.clip(1.2 * p.severity - 0.1, 0, 1))
    elif p.diagnosis == "parkinsons_disease":
        crouch_knee = 6.0 * p.severity
    trunk = {"parkinsons_disease": 15.0, "cerebral_palsy": 6.0}.get(p.diagnosis, 0.0) * p.severity
    if p.assistive_device == "walker":
        trunk += 12.0
    return standing_pose(p.leg_length_m, crouch_knee, trunk)


def _device_arms(p: Participant, pose: np.ndarray) -> None:
    """Static arm posture while holding a device (in place, on a pose array of any leading shape)."""
    if p.assistive_device == "walker":
        for side in ("r", "l"):
            pose[..., IDX[f"arm_flex_{side}"]] = 32.0
            pose[..., IDX[f"elbow_flex_{side}"]] = 35.0
    elif p.assistive_device == "cane":
        side = "r" if p.affected_side in ("left", "bilateral", "none") else "l"
        pose[..., IDX[f"elbow_flex_{side}"]] = 28.0
        pose[..., IDX[f"arm_add_{side}"]] = -14.0
    elif p.assistive_device == "bilateral_crutches":
        for side in ("r", "l"):
            pose[..., IDX[f"arm_flex_{side}"]] = 12.0
            pose[..., IDX[f"elbow_flex_{side}"]] = 20.0
            pose[..., IDX[f"arm_add_{side}"]] = -14.0


def _sts_lean(p: Participant, seated: np.ndarray, standing: np.ndarray) -> np.ndarray:
    """The seat-off posture of a sit-to-stand: trunk and pelvis pitched forward over the feet."""
    lean = seated.copy()
    flex = 28.0 + 8.0 * p.severity
    lean[IDX["pelvis_tilt"]] -= 0.6 * flex
    lean[IDX["lumbar_extension"]] -= 0.4 * flex
    for side in ("r", "l"):
        lean[IDX[f"hip_flexion_{side}"]] += 0.6 * flex
        lean[IDX[f"ankle_angle_{side}"]] += 6.0
    lean[IDX["pelvis_tx"]] = seated[IDX["pelvis_tx"]] + 0.06
    # After a stroke, weight goes onto the sound leg: the paretic knee and hip flex less.
    if p.diagnosis == "stroke" and p.affected_side in ("left", "right"):
        a = p.affected_side[0]
        lean[IDX[f"knee_angle_{a}"]] -= 12.0 * p.severity
        lean[IDX["lumbar_bending"]] += (8.0 if a == "l" else -8.0) * p.severity
    return lean


def _sts_duration(p: Participant, rng: np.random.Generator) -> float:
    # Healthy adults rise in about 1-1.3 s; rising time grows with age, weakness and device use.
    slow = 1.0 + 1.6 * p.severity + 0.01 * max(p.age - 55, 0) + (0.4 if p.assistive_device == "walker" else 0)
    return float(1.05 * slow * rng.normal(1.0, 0.08))


def _turn_duration(p: Participant, rng: np.random.Generator, degrees: float) -> float:
    slow = 1.0 + 1.3 * p.severity + 0.008 * max(p.age - 60, 0)
    if p.diagnosis == "parkinsons_disease":
        slow *= 1.0 + 0.6 * p.severity  # en-bloc turning with many small steps
    if p.assistive_device in ("walker", "bilateral_crutches"):
        slow *= 1.3
    return float(degrees / 180.0 * 1.1 * slow * rng.normal(1.0, 0.08))


def _add_freezing(p: Participant, rng: np.random.Generator, t: np.ndarray, pose: np.ndarray,
                  drive: Locomotion, start: float, stop: float) -> None:
    """Parkinsonian freezing during a turn: the stepping stalls and the knees tremble at 4-6 Hz."""
    if p.diagnosis != "parkinsons_disease" or rng.uniform() > 1.2 * p.severity - 0.2:
        return
    length = float(rng.uniform(0.8, 2.5) * p.severity)
    centre = float(rng.uniform(start, max(start, stop - length)))
    window = np.exp(-0.5 * ((t - centre - 0.5 * length) / max(0.35 * length, 0.1)) ** 2)
    drive.weight *= 1.0 - 0.8 * window
    drive.progress *= 1.0 - 0.9 * window
    tremble = 3.0 * np.sin(2 * np.pi * rng.uniform(4.0, 6.0) * t)
    for side in ("r", "l"):
        pose[:, IDX[f"knee_angle_{side}"]] += window * tremble
        pose[:, IDX[f"hip_flexion_{side}"]] += 0.5 * window * tremble


def _timed_up_and_go(p: Participant, rng: np.random.Generator):
    seated, standing = seated_pose(p.leg_length_m), _stand(p)
    _device_arms(p, standing)
    lean = _sts_lean(p, seated, standing)
    t_su = _sts_duration(p, rng)
    t_sd = t_su * rng.uniform(1.0, 1.25)
    speed = walking_speed(p, "self_selected", rng) * rng.uniform(0.9, 1.05)
    spec = gait_spec(p, speed, rng)
    turn1 = _turn_duration(p, rng, 180)
    turn2 = _turn_duration(p, rng, 180) * rng.uniform(1.0, 1.3)
    a = float(rng.uniform(0.6, 2.0))  # seated before "go"
    b = a + t_su
    walk_out = max((3.0 - 0.35) / speed, 0.5)
    c = b + 0.3 + walk_out  # the first turn starts near the 3 m line
    d = c + turn1
    e = d + max((3.0 - 0.7) / speed, 0.5)
    f = e + turn2
    g = f - 0.3 + t_sd  # sitting down starts as the second turn ends
    end = g + float(rng.uniform(0.6, 2.0))
    t = _time(end)
    direction = 1.0 if rng.uniform() < 0.5 else -1.0
    base = smooth_keyframes(t, [0, a, a + 0.45 * t_su, b, f - 0.3, f - 0.3 + 0.5 * t_sd, g],
                            np.stack([seated, seated, lean, standing, standing, _sts_lean(p, seated, standing),
                                      seated]))
    base[:, IDX["pelvis_tx"]] = smooth_keyframes(t, [0, a, b, f - 0.3, g],
                                                 np.array([[-0.18], [-0.18], [0.0], [0.0], [0.0]]))[:, 0]
    scalar = lambda times, vals: smooth_keyframes(t, times, np.asarray(vals, dtype=float)[:, None])[:, 0]  # noqa: E731
    weight = scalar([0, b - 0.3, b + 0.5, e, f - 0.2, g - 0.2], [0, 0, 1, 1, 0.75, 0])
    weight = np.minimum(weight, 1 - 0.3 * scalar([c - 0.3, c + 0.2, d - 0.2, d + 0.3], [0, 1, 1, 0]))
    progress = 1 - 0.7 * scalar([c - 0.3, c + 0.3, d - 0.3, d + 0.3], [0, 1, 1, 0])
    progress *= 1 - 0.8 * scalar([e - 0.3, e + 0.3], [0, 1])
    heading = direction * scalar([c, d, e, f], [0, 180, 180, 360])
    drive = Locomotion(weight, progress, heading)
    freeze_pose = np.zeros_like(base)
    _add_freezing(p, rng, t, freeze_pose, drive, c, d)
    pose, _ = compose_locomotion(rng, base, drive, spec, p.leg_length_m, FS, standing)
    pose += freeze_pose
    return pose, {"gen_test_time_s": g - a, "gen_speed_m_s": speed}


def _sit_to_stand(p: Participant, rng: np.random.Generator):
    seated, standing = seated_pose(p.leg_length_m), _stand(p)
    _device_arms(p, standing)
    lean = _sts_lean(p, seated, standing)
    times, poses = [0.0], [seated]
    now = float(rng.uniform(0.4, 1.5))
    times.append(now)
    poses.append(seated)
    for _ in range(5):
        t_su = _sts_duration(p, rng) * rng.uniform(0.85, 1.0)
        times += [now + 0.45 * t_su, now + t_su]
        poses += [lean, standing]
        now += t_su + rng.uniform(0.05, 0.3)
        times.append(now)
        poses.append(standing)
        t_sd = t_su * rng.uniform(0.9, 1.2)
        times += [now + 0.55 * t_sd, now + t_sd]
        poses += [lean, seated]
        now += t_sd + rng.uniform(0.05, 0.25)
        times.append(now)
        poses.append(seated)
    total = now + rng.uniform(0.3, 1.5)
    test_time = times[-2] - times[1]
    return smooth_keyframes(_time(total), np.array(times), np.stack(poses)), {"gen_test_time_s": test_time}


def _squat(p: Participant, rng: np.random.Generator):
    standing = _stand(p)
    depth = float(np.clip((1 - 0.55 * p.severity) * (1 - 0.005 * max(p.age - 40, 0)) * rng.uniform(0.75, 1.1),
                          0.25, 1.1))
    low = standing.copy()
    arms_forward = rng.uniform() < 0.6
    for side in ("r", "l"):
        aff = p.affected_side in ("bilateral", {"r": "right", "l": "left"}[side])
        d = depth * (1 - 0.3 * p.severity * aff)
        low[IDX[f"hip_flexion_{side}"]] = 95.0 * d
        low[IDX[f"knee_angle_{side}"]] = 110.0 * d
        low[IDX[f"ankle_angle_{side}"]] = 25.0 * d
        if arms_forward:
            low[IDX[f"arm_flex_{side}"]] = 70.0
            low[IDX[f"elbow_flex_{side}"]] = 10.0
    low[IDX["pelvis_tilt"]] = standing[IDX["pelvis_tilt"]] - 12.0 * depth
    low[IDX["lumbar_extension"]] = standing[IDX["lumbar_extension"]] - 10.0 * depth
    low[IDX["pelvis_tx"]] = -0.12 * depth
    knee = 0.5 * (low[IDX["knee_angle_r"]] + low[IDX["knee_angle_l"]])
    hip = 0.5 * (low[IDX["hip_flexion_r"]] + low[IDX["hip_flexion_l"]])
    low[IDX["pelvis_ty"]] = pelvis_height(p.leg_length_m, hip, knee, low[IDX["pelvis_tilt"]])
    times, poses, now = [0.0], [standing], float(rng.uniform(0.3, 1.5))
    times.append(now)
    poses.append(standing)
    for _ in range(int(rng.integers(3, 6))):
        down = rng.uniform(0.9, 1.5) * (1 + p.severity)
        hold = rng.uniform(0.0, 0.5)
        up = down * rng.uniform(0.8, 1.1)
        times += [now + down, now + down + hold, now + down + hold + up]
        poses += [low, low, standing]
        now += down + hold + up + rng.uniform(0.1, 0.6)
        times.append(now)
        poses.append(standing)
    return smooth_keyframes(_time(now + rng.uniform(0.2, 1.0)), np.array(times), np.stack(poses)), {}


def _jump(p: Participant, rng: np.random.Generator):
    standing = _stand(p)
    counter, takeoff, landing = standing.copy(), standing.copy(), standing.copy()
    for side in ("r", "l"):
        for pose, hip, knee, ankle, arm in ((counter, 65, 78, 22, -40), (takeoff, -4, 3, -32, 100),
                                            (landing, 40, 55, 20, 20)):
            pose[IDX[f"hip_flexion_{side}"]] = hip
            pose[IDX[f"knee_angle_{side}"]] = knee
            pose[IDX[f"ankle_angle_{side}"]] = ankle
            pose[IDX[f"arm_flex_{side}"]] = arm
    counter[IDX["pelvis_tilt"]] -= 18
    landing[IDX["pelvis_tilt"]] -= 10
    for pose in (counter, takeoff, landing):
        pose[IDX["pelvis_ty"]] = pelvis_height(p.leg_length_m, pose[IDX["hip_flexion_r"]],
                                               pose[IDX["knee_angle_r"]], pose[IDX["pelvis_tilt"]])
    # Plantarflexion lifts the pelvis by about a foot length times sin(ankle) before the feet leave the ground.
    takeoff[IDX["pelvis_ty"]] += 0.1 * p.height_m * np.sin(np.radians(30))
    # Countermovement jump height: ~0.35 m in young men, ~0.25 m in young women, about -1 %/year after 25.
    typical = 0.35 if p.sex == "male" else 0.25
    height = float(np.clip(rng.normal(typical, 0.05) * (1 - 0.01 * max(p.age - 25, 0)) * (1 - 2 * p.severity),
                           0.06, 0.6))
    flight = 2 * np.sqrt(2 * height / 9.81)
    times, poses, now = [0.0], [standing], float(rng.uniform(0.5, 1.5))
    times.append(now)
    poses.append(standing)
    flights = []
    for _ in range(int(rng.integers(1, 4))):
        times += [now + 0.45, now + 0.72]
        poses += [counter, takeoff]
        flights.append(now + 0.72)
        times += [now + 0.72 + flight, now + 0.72 + flight + 0.3, now + 0.72 + flight + 1.1]
        poses += [takeoff, landing, standing]
        now += 0.72 + flight + 1.1 + rng.uniform(0.5, 1.5)
        times.append(now)
        poses.append(standing)
    t = _time(now)
    pose = smooth_keyframes(t, np.array(times), np.stack(poses))
    for start in flights:
        tau = t - start
        inside = (tau > 0) & (tau < flight)
        v0 = 9.81 * flight / 2
        pose[inside, IDX["pelvis_ty"]] += v0 * tau[inside] - 0.5 * 9.81 * tau[inside] ** 2
    return pose, {"gen_jump_height_m": height}


def _four_square(p: Participant, rng: np.random.Generator):
    standing = _stand(p)
    _device_arms(p, standing)
    size = 0.42 * p.height_m / 1.7
    moves = [(1, 0), (0, 1), (-1, 0), (0, -1), (0, 1), (1, 0), (0, -1), (-1, 0)]  # clockwise, then back
    slow = (1 + 1.4 * p.severity) * (1 + 0.6 * max(0.7 - p.balance_score, 0)) * (1 + 0.006 * max(p.age - 50, 0))
    lead_default = "r" if rng.uniform() < 0.7 else "l"
    start = float(rng.uniform(0.5, 1.5))
    now = start
    times, positions = [0.0, now], [np.zeros(2), np.zeros(2)]
    bumps = []
    position = np.zeros(2)
    for i, (fwd, lat) in enumerate(moves):
        duration = 0.7 * slow * rng.normal(1.0, 0.1)
        position = position + size * np.array([fwd, lat])
        times.append(now + duration)
        positions.append(position.copy())
        lead = "r" if lat > 0 else ("l" if lat < 0 else lead_default)
        trail = "l" if lead == "r" else "r"
        bumps.append((lead, now, now + 0.6 * duration, fwd, lat))
        bumps.append((trail, now + 0.4 * duration, now + duration, fwd, lat))
        now += duration
        if i < len(moves) - 1:
            now += 0.15 * slow * rng.uniform(0.3, 1.5)
            times.append(now)
            positions.append(position.copy())
    end = now
    t = _time(end + rng.uniform(0.5, 1.5))
    pose = np.repeat(standing[None], t.shape[0], axis=0)
    path = smooth_keyframes(t, np.array(times), np.stack(positions))
    pose[:, IDX["pelvis_tx"]] = path[:, 0]
    pose[:, IDX["pelvis_tz"]] = path[:, 1]
    for side, a, b, fwd, lat in bumps:
        u = np.clip((t - a) / (b - a), 0, 1)
        bump = np.sin(np.pi * u) ** 2
        # Stepping over the sticks: lift the foot high; sideways steps abduct the hip, backward ones extend it.
        pose[:, IDX[f"hip_flexion_{side}"]] += bump * (28 if fwd > 0 else (8 if fwd < 0 else 22))
        pose[:, IDX[f"knee_angle_{side}"]] += bump * (50 if fwd >= 0 else 60)
        pose[:, IDX[f"hip_adduction_{side}"]] -= bump * (14 if lat != 0 else 0)
        pose[:, IDX["pelvis_list"]] += bump * (-3 if side == "r" else 3)
    return pose, {"gen_test_time_s": end - start}


def _standing_balance(p: Participant, rng: np.random.Generator, plan: TrialPlan):
    standing = _stand(p)
    _device_arms(p, standing)
    t = _time(plan.duration_s or 20.0)
    pose = np.repeat(standing[None], t.shape[0], axis=0)
    stance = plan.protocol
    difficulty = {"feet_apart": 1.0, "feet_together": 1.5, "semi_tandem": 2.0}.get(stance, 1.0)
    poor = 1.0 - p.balance_score
    sd = (0.35 + 2.2 * poor**1.5) * difficulty
    ap = smooth_noise(rng, t.shape[0], np.array([sd]), FS, cutoff_hz=0.4)[:, 0]
    ml = smooth_noise(rng, t.shape[0], np.array([0.6 * sd]), FS, cutoff_hz=0.5)[:, 0]
    for side, sign in (("r", 1), ("l", -1)):
        pose[:, IDX[f"ankle_angle_{side}"]] += ap
        pose[:, IDX[f"hip_flexion_{side}"]] -= 0.4 * ap * poor  # poor balance adds a hip strategy
        pose[:, IDX[f"hip_adduction_{side}"]] += sign * ml + (3.0 if stance == "feet_together" else 0.0)
    if stance == "semi_tandem":
        pose[:, IDX["hip_flexion_r"]] += 8.0
        pose[:, IDX["hip_flexion_l"]] -= 4.0
        pose[:, IDX["pelvis_rotation"]] += 8.0
    pose[:, IDX["pelvis_list"]] += ml
    pose[:, IDX["pelvis_tx"]] += p.leg_length_m * np.radians(ap)
    pose[:, IDX["pelvis_tz"]] += p.leg_length_m * np.radians(ml)
    if p.diagnosis == "parkinsons_disease" and p.severity > 0.3:
        tremor = 0.6 * p.severity * np.sin(2 * np.pi * rng.uniform(4, 6) * t)
        side = "r" if p.pd_more_affected == "right" else "l"
        pose[:, IDX[f"elbow_flex_{side}"]] += 4 * tremor
        pose[:, IDX[f"pro_sup_{side}"]] += 6 * tremor
    return pose, {"gen_sway_deg": sd}


def _turning(p: Participant, rng: np.random.Generator):
    standing = _stand(p)
    _device_arms(p, standing)
    spec = gait_spec(p, max(0.5 * p.self_selected_speed_m_s, 0.2), rng)
    spec.stride_time_s = float(np.clip(spec.stride_time_s, 0.9, 2.0))
    first = float(rng.uniform(0.5, 1.5))
    turn_a = _turn_duration(p, rng, 360)
    pause = float(rng.uniform(0.5, 1.5))
    turn_b = _turn_duration(p, rng, 360)
    c = first + turn_a + pause
    end = c + turn_b + rng.uniform(0.5, 1.5)
    t = _time(end)
    scalar = lambda times, vals: smooth_keyframes(t, times, np.asarray(vals, dtype=float)[:, None])[:, 0]  # noqa: E731
    direction = 1.0 if rng.uniform() < 0.5 else -1.0
    heading = direction * scalar([first, first + turn_a, c, c + turn_b], [0, 360, 360, 0])
    weight = 0.75 * np.maximum(scalar([first - 0.2, first + 0.3, first + turn_a - 0.3, first + turn_a + 0.2],
                                      [0, 1, 1, 0]),
                               scalar([c - 0.2, c + 0.3, c + turn_b - 0.3, c + turn_b + 0.2], [0, 1, 1, 0]))
    drive = Locomotion(weight, np.full(t.shape[0], 0.08), heading)
    base = np.repeat(standing[None], t.shape[0], axis=0)
    extra = np.zeros_like(base)
    _add_freezing(p, rng, t, extra, drive, first, first + turn_a)
    pose, _ = compose_locomotion(rng, base, drive, spec, p.leg_length_m, FS, standing)
    return pose + extra, {"gen_turn_time_s": turn_a}


def _gait_trial(p: Participant, rng: np.random.Generator, plan: TrialPlan, spec: GaitSpec, duration: float,
                start_phase: float | None = None):
    standing = _stand(p)
    t = _time(duration)
    base = np.repeat(standing[None], t.shape[0], axis=0)
    drive = Locomotion(np.ones(t.shape[0]), np.ones(t.shape[0]), np.zeros(t.shape[0]))
    pose, info = compose_locomotion(rng, base, drive, spec, p.leg_length_m, FS, standing, treadmill=plan.treadmill,
                                    start_phase=start_phase)
    span = info["phase_span"]
    # The generator's realised values over the clip (ground truth is measured from the motion, separately).
    gen = {
        "gen_cadence_steps_per_min": 120.0 * span / duration,
        "gen_speed_m_s": spec.speed_m_s if plan.treadmill else info["distance_m"] / duration,
        "gen_stride_length_m": (spec.speed_m_s * duration / span) if plan.treadmill else info["distance_m"] / span,
        "gen_stride_time_s": spec.stride_time_s,
    }
    return pose, gen, info


def synthesize_trial(p: Participant, plan: TrialPlan, rng: np.random.Generator) -> TrialMotion:
    """Builds one trial's canonical motion and the generator's values for it."""
    gen: dict = {}
    activity = plan.activity
    if activity in ("walking", "tandem_walking", "running", "stairs"):
        if activity == "walking":
            spec = gait_spec(p, walking_speed(p, plan.speed_condition or "self_selected", rng), rng)
        elif activity == "tandem_walking":
            spec = tandem_spec(p, rng)
        elif activity == "running":
            spec = running_spec(p, rng)
        else:
            spec = stairs_spec(p, plan.protocol == "ascent", rng)
        if plan.protocol == "lab_stride":
            # A lab force-plate pass: the clip starts shortly before a right foot contact and holds one full stride
            # and a bit, as a capture window placed around the plates does.
            duration = spec.stride_time_s * float(rng.uniform(1.55, 1.8))
        elif plan.protocol == "ten_meter_walk":
            duration = 10.0 / spec.speed_m_s + float(rng.uniform(0.5, 3.0))
        elif activity == "tandem_walking":
            duration = spec.stride_time_s * float(rng.uniform(4, 8))
        elif activity == "stairs":
            duration = spec.stride_time_s * float(rng.integers(2, 6)) + float(rng.uniform(0, 0.6))
        else:
            duration = float(plan.duration_s or 10.0)
        # The ankle is furthest forward (the contact the detector finds) at about 97 % of the template cycle.
        start_phase = float(rng.uniform(0.7, 0.8)) if plan.protocol == "lab_stride" else None
        pose, gen, _ = _gait_trial(p, rng, plan, spec, duration, start_phase)
        if activity == "stairs":
            # Each stride climbs (or descends) two steps of 0.17 m over the 0.56 m it travels forward.
            forward = pose[:, IDX["pelvis_tx"]] - pose[0, IDX["pelvis_tx"]]
            pose[:, IDX["pelvis_ty"]] += (0.34 / 0.56) * forward * (1 if plan.protocol == "ascent" else -1)
            gen = {"gen_stride_time_s": spec.stride_time_s}
        gen["gen_treadmill_speed_m_s"] = spec.speed_m_s if plan.treadmill else float("nan")
    elif activity == "timed_up_and_go":
        pose, gen = _timed_up_and_go(p, rng)
    elif activity == "four_square_step_test":
        pose, gen = _four_square(p, rng)
    elif activity == "sit_to_stand":
        pose, gen = _sit_to_stand(p, rng)
    elif activity == "squat":
        pose, gen = _squat(p, rng)
    elif activity == "jump":
        pose, gen = _jump(p, rng)
    elif activity == "standing_balance":
        pose, gen = _standing_balance(p, rng, plan)
    elif activity == "turning":
        pose, gen = _turning(p, rng)
    else:
        raise ValueError(f"unknown activity {activity!r}")
    return _finish(p, plan, pose, gen, rng)


def _finish(p: Participant, plan: TrialPlan, pose: np.ndarray, gen: dict, rng: np.random.Generator) -> TrialMotion:
    n = pose.shape[0]
    style = p.style
    # Person offsets (same in every trial) and trial offsets (segment calibration differs between sessions).
    offsets = np.zeros(N_COORDS)
    for name, value in style["offset"].items():
        for col in (name, f"{name}_r", f"{name}_l"):
            if col in IDX:
                offsets[IDX[col]] += value
    for name, value in style["side_offset"].items():
        offsets[IDX[f"{name}_r"]] += value
        offsets[IDX[f"{name}_l"]] -= value
    trial_sd = np.full(N_COORDS, 1.2)
    noise_sd = np.full(N_COORDS, 1.0)
    for col in ("hip_rotation_r", "hip_rotation_l", "arm_rot_r", "arm_rot_l", "pro_sup_r", "pro_sup_l",
                "subtalar_angle_r", "subtalar_angle_l"):
        trial_sd[IDX[col]] = 3.0
        noise_sd[IDX[col]] = 2.0
    trial_sd[[IDX["pelvis_tx"], IDX["pelvis_ty"], IDX["pelvis_tz"]]] = 0.0
    trial_sd[IDX["pelvis_ty"]] = 0.01
    noise_sd[[IDX["pelvis_tx"], IDX["pelvis_ty"], IDX["pelvis_tz"]]] = 0.004
    offsets += rng.normal(0, 1, N_COORDS) * trial_sd
    level = float(rng.uniform(0.6, 1.6))  # video quality varies between sessions
    pose = pose + offsets + smooth_noise(rng, n, noise_sd * level, FS)

    heading = float(rng.uniform(-180, 180))
    start = rng.uniform(-4.0, 4.0, size=2)
    h = np.radians(heading)
    x, z = pose[:, IDX["pelvis_tx"]].copy(), pose[:, IDX["pelvis_tz"]].copy()
    # Forward (x) turns to (cos h, -sin h) and right (z) to (sin h, cos h) under a rotation h about the vertical.
    pose[:, IDX["pelvis_tx"]] = start[0] + x * np.cos(h) + z * np.sin(h)
    pose[:, IDX["pelvis_tz"]] = start[1] - x * np.sin(h) + z * np.cos(h)
    pose[:, IDX["pelvis_rotation"]] += heading

    values = pose.copy()
    values[:, ANGLE_COLUMNS] = np.radians(values[:, ANGLE_COLUMNS])
    mask = np.ones(N_COORDS, dtype=bool)
    if not plan.has_arms:
        mask[ARM_COLUMNS] = False
    if not plan.has_lumbar:
        mask[LUMBAR_COLUMNS] = False
    values[:, ~mask] = 0.0
    gen["gen_heading_deg"] = heading
    return TrialMotion(values.astype(np.float32), mask, gen)
