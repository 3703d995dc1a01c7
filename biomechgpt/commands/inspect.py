"""`biomechgpt inspect FILE`: load a motion file and summarise what was found and detected."""

from __future__ import annotations

import argparse
import json

__all__ = ["register", "run", "format_summary"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="summarise a motion file (.mot, .sto, .csv, .npz)",
        description="Load a motion file the way every stage does and print its duration, frame rates, coordinates "
        "found / missing / ignored, and the units and knee convention detected. Bad input prints one line and "
        "exits with status 2.",
    )
    parser.add_argument("file", metavar="FILE", help="an OpenSim .mot/.sto, a .csv with a header row, or an .npz")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--max-mb", type=float, default=None, metavar="MB",
                        help="refuse files larger than this many megabytes (default 200)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from biomechgpt.errors import UsageError
    from biomechgpt.motion_io import DEFAULT_MAX_BYTES, inspect_motion

    if args.max_mb is not None and not args.max_mb > 0:
        raise UsageError(f"--max-mb must be positive, got {args.max_mb}")
    max_bytes = DEFAULT_MAX_BYTES if args.max_mb is None else int(args.max_mb * 1e6)
    summary = inspect_motion(args.file, max_bytes=max_bytes)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    """The human-readable table `biomechgpt inspect` prints."""
    from biomechgpt.processing.motion import CANONICAL_COORDINATES

    def names(items: list[str]) -> str:
        if len(items) == len(CANONICAL_COORDINATES) and set(items) == set(CANONICAL_COORDINATES):
            return f"{len(items)}  (all canonical coordinates)"
        return f"{len(items)}" + (f"  ({', '.join(items)})" if items else "")

    knee = {
        "negative": "flexion negative (gait2392 family) -> converted to flexion positive",
        "positive": "flexion positive (Rajagopal family)",
        "undetermined": "undetermined (knee moves under 10 degrees), kept as is",
        "absent": "no knee coordinate",
    }[summary["knee_convention"]]
    interpolated = summary["interpolated"]
    rows = [
        ("file", summary["source"]),
        ("format", summary["format"]),
        ("subject", summary["subject_id"] or "-"),
        ("duration", f"{summary['duration_s']:.3f} s"),
        ("frame rate", f"{summary['source_frame_rate']:g} Hz source -> {summary['frame_rate']:g} Hz canonical"),
        ("frames", f"{summary['source_n_frames']} source -> {summary['n_frames']} canonical"),
        ("units", f"{summary['units']} ({summary['units_source']})"),
        ("knee convention", f"{knee} ({summary['knee_convention_source']})"),
        ("coordinates found", names(summary["coordinates_found"])),
        ("coordinates missing", names(summary["coordinates_missing"])),
        ("columns ignored", names(summary["columns_ignored"])),
        ("gaps interpolated", ", ".join(f"{k}: {v} values" for k, v in interpolated.items()) or "none"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
