"""`biomechgpt simulate`: write a simulated clinical cohort, or a realism report against real recordings."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from biomechgpt.commands import non_negative_int, positive_int

__all__ = ["register", "run"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a clinical cohort (participants, trials, canonical motions, ground truth)",
        description="Simulate a clinical cohort into --out, or write a realism report (--report) comparing simulated "
                    "normal walking, crouch gait and running with the real reference recordings.",
    )
    parser.add_argument("--participants", type=positive_int, default=None,
                        help="number of participants (500; with --report, the sample per comparison, 30)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed; same seed, same bytes (0)")
    parser.add_argument("--held-out", type=positive_int, default=None, metavar="N",
                        help="participants in each of the validation and test splits, the rest train (default: 15%% "
                             "each)")
    parser.add_argument("--out", type=Path, help="cohort folder to create")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes (default: all CPU cores)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cohort folder")
    parser.add_argument("--report", type=Path, metavar="DIR",
                        help="write the realism report (report.json + PNG plots) to DIR instead of a cohort")
    parser.add_argument("--reference", type=Path, default=None,
                        help="folder with the real recordings (default: ../shared/reference_motion next to the "
                             "project, or $BIOMECHGPT_REFERENCE_MOTION)")
    parser.add_argument("--cohort", type=Path, default=None,
                        help="with --report: compare this existing cohort's trials instead of simulating a sample")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from biomechgpt.errors import UsageError

    if args.report is not None:
        from biomechgpt.simulation.report import realism_report

        if args.held_out is not None:
            raise UsageError("--held-out splits a cohort written with --out; the realism report (--report) has no "
                             "splits")

        try:
            summary = realism_report(args.report, reference_dir=args.reference, cohort_dir=args.cohort,
                                     seed=args.seed, n_participants=args.participants or 30,
                                     overwrite=args.overwrite)
        except ValueError as err:
            raise UsageError(str(err)) from None
        print(f"realism report written to {args.report}")
        print(f"{'comparison':<17} {'coordinate':<16} {'RMS diff (deg)':>14} {'ROM sim':>8} {'ROM real':>8}")
        for comparison, coords in summary["comparisons"].items():
            for name in ("hip_flexion_r", "knee_angle_r", "ankle_angle_r"):
                if name in coords:
                    c = coords[name]
                    print(f"{comparison:<17} {name:<16} {c['rms_difference_deg']:>14.1f} "
                          f"{c['rom_simulated_deg']:>8.1f} {c['rom_reference_deg']:>8.1f}")
        for comparison, cadence in summary.get("cadence", {}).items():
            sim, real = cadence["simulated"], cadence["reference"]
            print(f"{comparison} cadence (steps/min, median [10-90%]): simulated {sim['median']} "
                  f"[{sim['p10']}-{sim['p90']}] (n={sim['n']}), real {real['median']} [{real['p10']}-{real['p90']}] "
                  f"(n={real['n']})")
        return 0

    if args.out is None:
        raise UsageError("--out is required (the cohort folder to create), or pass --report DIR")
    from biomechgpt.simulation import simulate_cohort

    start = time.perf_counter()
    try:
        out = simulate_cohort(args.out, n_participants=args.participants or 500, seed=args.seed, workers=args.workers,
                              overwrite=args.overwrite, progress=not args.quiet, held_out=args.held_out)
    except ValueError as err:
        raise UsageError(str(err)) from None
    elapsed = time.perf_counter() - start

    from biomechgpt.cohort import load_cohort

    cohort = load_cohort(out)
    trials, people = cohort.trials, cohort.participants
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"cohort written to {out} in {elapsed:.1f} s")
    print(f"{'participants':<25}{len(people):>10}")
    print(f"{'trials':<25}{len(trials):>10}")
    print(f"{'hours of motion':<25}{trials['duration_s'].sum() / 3600:>10.2f}")
    print(f"{'size on disk (MB)':<25}{size / 1e6:>10.1f}")
    for split in ("train", "validation", "test"):
        print(f"{split + ' participants':<25}{int((people['split'] == split).sum()):>10}")
    return 0
