"""`biomechgpt ask`: answer questions about one motion file (or several recordings of one person) with a trained
model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ask",
        help="ask a trained model questions about a motion file",
        description="Answers each --question about FILE (any format biomechgpt inspect reads). Closed-set questions "
        "report the answer's probability among the task's candidates. Repeat --motion to answer participant-level "
        "questions (impairment, side, diagnosis, device, falls) from several recordings of one person.",
    )
    parser.add_argument("--model", required=True, help="model folder (biomechgpt train --out)")
    parser.add_argument("--motion", action="append", required=True,
                        help="motion file (.mot, .csv, .npz, ...); repeat for several recordings of one person")
    parser.add_argument("--question", action="append", required=True, help="a question; repeat to ask several")
    parser.add_argument("--task", action="append", default=None,
                        help="the task of each question in order (default: detected from the wording)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per question")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="limit of generated answers (default: 48)")
    parser.add_argument("--max-mb", type=float, default=None, metavar="MB",
                        help="refuse motion files larger than this many megabytes (default 200)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    import os

    from biomechgpt.errors import UsageError

    questions = [q.strip() for q in args.question]
    if any(not q for q in questions):
        raise UsageError("--question: empty question")
    if args.task is not None and len(args.task) != len(questions):
        raise UsageError(f"--task: given {len(args.task)} times for {len(questions)} questions")
    if args.max_new_tokens < 1:
        raise UsageError("--max-new-tokens: must be at least 1")
    if args.max_mb is not None and not args.max_mb > 0:
        raise UsageError(f"--max-mb: must be positive, got {args.max_mb}")
    model_dir = _check_model_folder(Path(args.model))

    from biomechgpt.motion_io import DEFAULT_MAX_BYTES, load_motion

    max_bytes = DEFAULT_MAX_BYTES if args.max_mb is None else int(args.max_mb * 1e6)
    motions = [load_motion(path, max_bytes=max_bytes) for path in args.motion]

    import biomechgpt  # noqa: F401  (registers the Auto classes)
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the answers are the output; loading bars would interleave with them

    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
    except Exception as err:  # transformers / safetensors raise OSError, ValueError or their own types
        if os.environ.get("BIOMECHGPT_DEBUG"):
            raise
        raise UsageError(f"--model {model_dir}: cannot load the model ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:300]})") from None
    processor = model.processor
    # a model that reads motion codes needs the MotionTokenizer that made them (one that reads only motion frames
    # falls back to the default feature extractor)
    if getattr(processor, "motion_tokenizer", None) is None and getattr(processor, "reads_codes", True):
        raise UsageError(f"--model {model_dir}: the folder has no MotionTokenizer ({model_dir / 'motion_tokenizer'}), "
                         "so the model cannot read motion files; save the processor with its motion_tokenizer")
    if args.task is not None:
        unknown = [t for t in args.task if t not in processor.task_kinds]
        if unknown:
            known = ", ".join(sorted(processor.task_kinds))
            raise UsageError(f"--task {unknown[0]}: not a task of this model ({known})")
    from biomechgpt.answering import answer_questions, present_answer

    if len(motions) > 1:
        try:
            answers = [{**present_answer(a), "note": None}
                       for a in model.answer_participant(motions, questions, task=args.task)]
        except ValueError as err:
            raise UsageError(f"--motion given {len(motions)} times: {err}") from None
    else:
        answers = answer_questions(model, motions[0], questions, tasks=args.task, max_new_tokens=args.max_new_tokens)
    if not args.json:  # once per recording, before its answers (each JSON object carries it as "warning")
        for warning in dict.fromkeys(a["warning"] for a in answers if a.get("warning")):
            print(f"Warning: {warning}")
    for answer in answers:
        if args.json:
            print(json.dumps(answer))
            continue
        detail = [answer["task"] or "not a task of this model"]
        if answer["confidence"] is not None:
            detail.append(f"confidence {answer['confidence']:.2f}")
        if answer["spread"] is not None:
            detail.append(f"spread ±{answer['spread']:.3g} {answer['unit'] or ''}".rstrip())
        if (answer.get("recordings") or 1) > 1:
            detail.append(f"from {answer['recordings']} recordings")
        print(f"Q: {answer['question']}\nA: {answer['answer']}  [{', '.join(detail)}]")
        if answer.get("note"):
            print(f"   ({answer['note']})")
    return 0


def _check_model_folder(model_dir: Path) -> Path:
    """The checks that need no model loaded: a folder with a readable BiomechGPT config.json."""
    from biomechgpt.errors import UsageError

    if not (model_dir / "config.json").is_file():
        raise UsageError(f"--model {model_dir}: not a model folder (no config.json)")
    try:
        model_type = json.loads((model_dir / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as err:
        raise UsageError(f"--model {model_dir}: config.json is not readable JSON ({' '.join(str(err).split())})"
                         ) from None
    if model_type != "biomechgpt":
        what = ""
        if model_type == "biomechgpt_motion_tokenizer":
            what = " (a MotionTokenizer folder; pass the model folder)"
        raise UsageError(f"--model {model_dir}: config.json model_type is {model_type!r}, not 'biomechgpt'{what}")
    return model_dir
