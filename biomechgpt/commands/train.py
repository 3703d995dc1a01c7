"""`biomechgpt train`: fine-tune a base language model on the QA corpus into a BiomechGPT model folder."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a language model on the QA corpus (LoRA, QLoRA or full)",
        description="Fine-tunes BASE (tiny / tiny-s / tiny-l trained from scratch, or a Hub id or local folder) on "
        "the QA corpus and writes a model folder loadable with from_pretrained. Rerun to resume.",
    )
    parser.add_argument("--dataset", required=True, help="QA corpus folder (biomechgpt build-dataset --out)")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--base-model", default="tiny",
                        help="tiny, tiny-s, tiny-l, a Hub id or a folder (default: tiny)")
    parser.add_argument("--tokenizer", default=None,
                        help="MotionTokenizer folder (default: DATASET/motion_tokenizer or DATASET/../tokenizer)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--lora", dest="mode", action="store_const", const="lora", help="LoRA (default for Hub models)")
    mode.add_argument("--qlora", dest="mode", action="store_const", const="qlora", help="LoRA on a 4-bit NF4 base")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="train every weight "
                      "(default for tiny)")
    parser.add_argument("--epochs", type=float, default=2.0, help="passes over the corpus (default: 2)")
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (overrides --epochs)")
    parser.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (default: by mode)")
    parser.add_argument("--batch-size", type=int, default=8, help="conversations per step (default: 8)")
    parser.add_argument("--max-motion-codes", type=int, default=256, help="crop longer trials (default: 256)")
    parser.add_argument("--motion-loss", action="store_true",
                        help="also train next-motion-code prediction (default: answer tokens only)")
    parser.add_argument("--motion-input", choices=("codes", "continuous", "both"), default="continuous",
                        help="what the model reads of a motion: the MotionTokenizer's codes (the paper's model), soft "
                        "tokens from a motion encoder over the joint-angle frames, or both (default: continuous)")
    parser.add_argument("--cohort", default=None,
                        help="cohort folder the corpus was built from, whose motions a continuous model trains on "
                        "(default: DATASET/../cohort)")
    parser.add_argument("--encoder-epochs", type=float, default=None,
                        help="stage 1: passes of the motion encoder alone over the training trials (default: 12; "
                        "0 skips it)")
    parser.add_argument("--alignment-epochs", type=float, default=None,
                        help="stage 2a: passes over one caption per trial (all its answers) before the QA "
                        "conversations (default: 4; 0 skips it: 9 minutes faster on the default run, but the "
                        "language model alone then does not read motion)")
    parser.add_argument("--no-motion-readout", action="store_true",
                        help="no readout tokens: the language model reads only the encoder's query tokens (default: "
                        "one readout token per task, stage 1's head for it)")
    parser.add_argument("--no-motion-statistics-token", action="store_true",
                        help="every query token of the motion encoder attends (default: the last one pools the mean "
                        "and standard deviation of the frames)")
    parser.add_argument("--motion-descriptors", action="store_true",
                        help="one more query token of the motion encoder reads the whole recording's gait descriptors "
                        "(tempo, speed, step timing, ranges of motion, asymmetries); default: the feature frames "
                        "only. Better impairment side and real treadmill cadence, worse device and fall history")
    parser.add_argument("--encoder-mirror", type=float, default=None, metavar="SHARE",
                        help="stage 1: the share of training crops read as their left-right mirror image, the "
                        "affected side swapped; the readout heads then read the motion and its mirror image "
                        "(default: 0, none)")
    parser.add_argument("--readout-answer-weight", type=float, default=1.0, metavar="W",
                        help="how much the readout heads count in closed-set and numeric answers beside the language "
                        "model (default: 1, equal; 0: the language model alone)")
    parser.add_argument("--train-motion-encoder", action="store_true",
                        help="keep training the motion encoder in stage 2 (default: frozen after stage 1)")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default: 16)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bfloat16 autocast (default: on for tiny where the CPU or GPU computes bf16 natively)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute activations in the backward pass: less memory for a large base, more time")
    parser.add_argument("--logging-steps", type=int, default=25, help="log the loss every N steps (default: 25)")
    parser.add_argument("--save-dtype", choices=("float32", "bfloat16", "float16"), default=None,
                        help="dtype of the saved weights (default: the base's stored dtype; float32 for tiny)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=_main, mode=None)


def _main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from biomechgpt.errors import UsageError
    from biomechgpt.commands import hide_weight_loading_bars
    from biomechgpt.training.train_lm import train_model

    hide_weight_loading_bars()

    if not Path(args.dataset).is_dir():
        raise UsageError(f"--dataset {args.dataset}: folder not found")
    if args.tokenizer is not None and not Path(args.tokenizer).is_dir():
        raise UsageError(f"--tokenizer {args.tokenizer}: folder not found")
    if args.cohort is not None and not Path(args.cohort).is_dir():
        raise UsageError(f"--cohort {args.cohort}: folder not found")
    encoder = {} if args.encoder_epochs is None else {"encoder_epochs": args.encoder_epochs}
    if args.alignment_epochs is not None:
        encoder["alignment_epochs"] = args.alignment_epochs
    if args.encoder_mirror is not None:
        encoder["encoder_mirror"] = args.encoder_mirror
    try:
        out = train_model(args.dataset, args.base_model, args.out, motion_tokenizer=args.tokenizer, mode=args.mode,
                          seed=args.seed, resume=not args.no_resume, epochs=args.epochs, max_steps=args.max_steps,
                          learning_rate=args.learning_rate, batch_size=args.batch_size,
                          max_motion_codes=args.max_motion_codes, motion_loss=args.motion_loss,
                          lora_r=args.lora_r, progress=not args.no_progress, motion_input=args.motion_input,
                          cohort_dir=args.cohort, freeze_motion_encoder=not args.train_motion_encoder, bf16=args.bf16,
                          gradient_checkpointing=args.gradient_checkpointing, logging_steps=args.logging_steps,
                          save_dtype=args.save_dtype, motion_readout=not args.no_motion_readout,
                          motion_statistics_token=not args.no_motion_statistics_token,
                          motion_descriptors=args.motion_descriptors,
                          readout_answer_weight=args.readout_answer_weight, **encoder)
    except ValueError as err:  # bad hyperparameters are usage errors
        raise UsageError(str(err)) from None
    print(f"model saved to {out}")
    return 0
