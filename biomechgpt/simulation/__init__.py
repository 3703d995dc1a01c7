"""The simulated clinical cohort: participants, activities, canonical motions and ground truth measured from them.

Modules: `participants` (who), `patterns` (how each diagnosis and device walks), `kinematics` (the joint-angle
layers), `activities` (which trials and their motion), `ground_truth` (gait events, speed, test times measured from
the motion), `calibration` (templates fitted to real recordings), `writer` (reproducible files), `simulator`
(`simulate_cohort`) and `report` (realism against the real recordings).
"""

from __future__ import annotations

from biomechgpt.simulation.simulator import simulate_cohort

__all__ = ["simulate_cohort"]
