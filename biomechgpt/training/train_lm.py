"""Fine-tune a causal LM on the QA corpus into a `BiomechGPTForCausalLM` (`biomechgpt train`).

One code path for every base model: the embedded `tiny` sizes (a Llama config and a BPE tokenizer trained here on the
corpus text, weights from scratch) and any Hub id or local folder (pretrained weights). The text vocabulary gains
`<motion>`, `</motion>` and one token per MotionTokenizer code; training runs on transformers' `Trainer`:

- `mode="full"` trains every weight (the default for `tiny`, which starts random);
- `mode="lora"` (the default for pretrained bases) trains LoRA adapters on every linear layer plus the new token rows
  (peft `trainable_token_indices`);
- `mode="qlora"` does the same on a base loaded in 4-bit NF4 with bitsandbytes, as in the paper.

The rows of one trial become one multi-turn conversation with the motion once (at most `max_turns` questions each, in
a seeded random order); the loss covers answer tokens only. Checkpoints go to `OUT/checkpoints/` and a rerun resumes
from the newest (reading back the tokenized conversations kept there); the final model folder holds merged weights,
the processor, the MotionTokenizer, a model card and, for LoRA / QLoRA, the PEFT adapter as trained (`OUT/adapter/`).

Token budget of the default run: motion codes are cropped to their middle `max_motion_codes` (256 codes = 34 s at
7.5 codes/s, longer than every simulated gait trial and clinical test), conversations hold at most 8 questions, so a
sequence stays under ~600 tokens and the default corpus is ~2 M tokens per epoch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# corpus_task_metadata is re-exported: benches and older callers import it from here
from biomechgpt.dataset_builder.answer_space import corpus_task_metadata, load_answer_space
from biomechgpt.dataset_builder.corpus import CorpusError, load_corpus
from biomechgpt.processing.motion import MotionInputError

__all__ = ["BiomechGPTTrainingArguments", "train_model", "build_model", "quiet_peft",
           "corpus_task_metadata", "TRAINING_MODES"]

logger = logging.getLogger(__name__)

TRAINING_MODES = ("lora", "qlora", "full")
SAVE_DTYPES = ("float32", "bfloat16", "float16")
CHECKPOINTS = "checkpoints"


@dataclass
class BiomechGPTTrainingArguments:
    """Hyperparameters of `train_model` (not part of the model config).

    Args:
        mode (`str`, *optional*): "lora", "qlora" or "full"; defaults to "full" for the embedded `tiny` sizes (random
            weights) and "lora" for pretrained bases.
        epochs (`float`, defaults to 2.0): passes over the training conversations.
        max_steps (`int`, defaults to -1): stop after this many optimizer steps when positive (overrides `epochs`).
        learning_rate (`float`, *optional*): defaults to 2e-3 (full, tiny), 5e-4 (LoRA/QLoRA) or 5e-5 (full,
            pretrained).
        batch_size (`int`, defaults to 8): conversations per device and step.
        gradient_accumulation_steps (`int`, defaults to 1).
        warmup_ratio (`float`, defaults to 0.05), weight_decay (`float`, defaults to 0.01).
        max_motion_codes (`int`, defaults to 256): longer trials are cropped to their middle codes.
        max_turns (`int`, defaults to 8): questions per conversation; a trial with more is split.
        motion_loss (`bool`, defaults to `False`): also train next-motion-code prediction on the motion tokens (the
            answer-only loss leaves the motion embeddings with little signal; see `build_training_example`).
        lora_r (`int`, defaults to 16), lora_alpha (`int`, defaults to 32), lora_dropout (`float`, defaults to 0.0).
        tokenizer_vocab_size (`int`, defaults to 2048): text vocabulary of the embedded tokenizer.
        bf16 (`bool`, *optional*): bfloat16 autocast; defaults to on for `tiny` where the processor computes bfloat16
            natively (a GPU that supports it, or a CPU with AVX512-BF16 / AMX: ~2.5x faster), off elsewhere (an AVX2
            CPU emulates it ~10x slower than float32).
        seed (`int`, defaults to 0): everything random (initial weights, turn order, batches) follows it.
        save_steps (`int`, defaults to 200), save_total_limit (`int`, defaults to 2): checkpointing.
        keep_checkpoints (`bool`, defaults to `False`): keep `OUT/checkpoints/` after a finished run.
        logging_steps (`int`, defaults to 25).
        progress (`bool`, defaults to `True`): show the progress bar.
        motion_input (`str`, defaults to `"continuous"`): what the model reads of a motion: "codes" (the paper's
            discrete tokens), "continuous" (soft tokens from a motion encoder over the feature frames) or "both".
        num_motion_tokens (`int`, defaults to 16), motion_encoder_hidden_size (`int`, defaults to 64),
            motion_encoder_layers (`int`, defaults to 3): the motion encoder's shape.
        motion_statistics_token (`bool`, defaults to `True`): the encoder's last query token pools the mean and
            standard deviation of its frames (see `BiomechGPTMotionEncoder`: stage-1 diagnosis macro-F1 0.63 -> 0.67
            on the default run's test split, mean of two seeds).
        motion_descriptors (`bool`, defaults to `False`): one more query token of the encoder reads the whole
            recording's gait descriptors (`motion_descriptors(motion, "gait")`: tempo, speed, step timing, ranges of
            motion and their asymmetry; see `BiomechGPTMotionEncoder`). With the default recipe on the default run's
            data (README, "Results of the default run"): impairment side macro-F1 0.72 -> 0.81 (per participant
            0.87 -> 0.95), every real treadmill file called walking with its cadence within 5 steps/min (13 of 13
            against 8), but device 0.62 -> 0.56, fall history 0.60 -> 0.55, and four OpenSim example clips called
            other activities. Off by default until it costs nothing.
        encoder_epochs (`float`, defaults to 12.0): stage 1, passes of the motion encoder alone over the training
            trials with one head per task (see `biomechgpt.training.pretrain_encoder`); 0 skips it.
        encoder_learning_rate (`float`, defaults to 2e-3), encoder_batch_size (`int`, defaults to 32).
        encoder_mirror (`float`, defaults to 0): the share of stage-1 crops read as their left-right mirror image
            (the affected side swapped); above 0, the readout heads also read both the motion and its mirror image at
            answer time (`BiomechGPTConfig.motion_mirror_channels`). Not with `motion_descriptors`.
        alignment_epochs (`float`, defaults to 4.0): stage 2a for models that read continuous motion, passes over
            one short conversation per trial whose answer lists all of the trial's closed-set and numeric answers
            (see `build_captions`) before the QA conversations; 0 skips it. A caption epoch costs about a third of a
            QA epoch. Without it the language model does not learn to read the soft tokens in one QA epoch (alone it
            answers the activity at test macro-F1 0.06, against 0.95 after 4 caption epochs); answers that read the
            readout heads (`readout_answer_weight`) then come from the heads, and score about the same on simulated
            trials (diagnosis 0.54 against 0.59, the rest within 0.03) in 9 fewer minutes: see the README's results.
        freeze_motion_encoder (`bool`, defaults to `True`): keep the stage-1 encoder fixed in stage 2 (its soft
            tokens are then computed once per trial), training the projector and the language model.
        motion_readout (`bool`, defaults to `True`): for models that read features and run stage 1, one readout
            token per closed-set and numeric task beside the `num_motion_tokens` query tokens: stage 1's head for
            the task, kept in the encoder (see `BiomechGPTMotionEncoder`).
        readout_answer_weight (`float`, defaults to 1.0): with readout heads and a frozen encoder, how much the
            heads count in closed-set and numeric answers beside the language model (`BiomechGPTConfig`); 0 answers
            from the language model alone (the heads still feed it their readout tokens). On the default run's test
            split they lift TUG r from 0.71 to 0.96 and diagnosis macro-F1 from 0.47 to 0.59 (see the README).
            `biomechgpt run` uses 2: after its shorter language-model training, 2 scores what 1 scores after 4
            caption epochs and a QA epoch (README, "Results of the default run").
        gradient_checkpointing (`bool`, defaults to `False`): recompute activations in the backward pass (less
            memory for a large base, ~30% more time).
        save_dtype (`str`, *optional*): dtype of the saved weights ("float32", "bfloat16" or "float16"); defaults to
            the pretrained base's stored dtype (a bf16 base is not written as a twice-as-large float32 file) and to
            float32 for the embedded `tiny` sizes.
    """

    mode: str | None = None
    epochs: float = 2.0
    max_steps: int = -1
    learning_rate: float | None = None
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    max_motion_codes: int = 256
    max_turns: int = 8
    motion_loss: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    tokenizer_vocab_size: int = 2048
    bf16: bool | None = None
    seed: int = 0
    save_steps: int = 200
    save_total_limit: int = 2
    keep_checkpoints: bool = False
    logging_steps: int = 25
    progress: bool = True
    motion_input: str = "continuous"
    num_motion_tokens: int = 16
    motion_encoder_hidden_size: int = 64
    motion_encoder_layers: int = 3
    motion_statistics_token: bool = True
    motion_descriptors: bool = False
    encoder_epochs: float = 12.0
    encoder_learning_rate: float = 2e-3
    encoder_batch_size: int = 32
    encoder_mirror: float = 0.0
    alignment_epochs: float = 4.0
    freeze_motion_encoder: bool = True
    motion_readout: bool = True
    readout_answer_weight: float = 1.0
    gradient_checkpointing: bool = False
    save_dtype: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in TRAINING_MODES:
            raise ValueError(f"mode must be one of {TRAINING_MODES}, got {self.mode!r}")
        for name in ("batch_size", "gradient_accumulation_steps", "max_motion_codes", "max_turns", "lora_r"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("set epochs > 0 or max_steps > 0")
        from biomechgpt.modeling.configuration_biomechgpt import MOTION_INPUTS

        if self.motion_input not in MOTION_INPUTS:
            raise ValueError(f"motion_input must be one of {MOTION_INPUTS}, got {self.motion_input!r}")
        for name in ("num_motion_tokens", "motion_encoder_hidden_size", "motion_encoder_layers", "encoder_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.save_dtype is not None and self.save_dtype not in SAVE_DTYPES:
            raise ValueError(f"save_dtype must be one of {SAVE_DTYPES}, got {self.save_dtype!r}")
        if self.logging_steps < 1:
            raise ValueError(f"logging_steps must be at least 1, got {self.logging_steps}")
        if not 0.0 <= self.encoder_mirror <= 1.0:
            raise ValueError(f"encoder_mirror must be a share between 0 and 1, got {self.encoder_mirror}")
        if self.encoder_mirror and self.motion_descriptors:
            raise ValueError("encoder_mirror: the descriptor token has no mirror image; use one or the other")
        for name in ("encoder_epochs", "alignment_epochs", "readout_answer_weight"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")

    @property
    def motion_encoder(self) -> dict[str, int | bool]:
        """The encoder fields of `BiomechGPTConfig`."""
        from biomechgpt.processing.motion_descriptors import ENCODER_DESCRIPTORS, descriptor_names

        reads_descriptors = self.motion_descriptors and self.motion_input != "codes"
        return {"num_motion_tokens": self.num_motion_tokens,
                "motion_encoder_hidden_size": self.motion_encoder_hidden_size,
                "motion_encoder_layers": self.motion_encoder_layers,
                "motion_statistics_token": self.motion_statistics_token,
                "motion_descriptor_size": len(descriptor_names(ENCODER_DESCRIPTORS)) if reads_descriptors else 0}


# ---------------------------------------------------------------------------------------------------------------------
# corpus


def build_conversations(frame, processor, *, max_turns: int, seed: int, progress: bool = False,
                        motion_loss: bool = False) -> list[dict]:
    """Token ids and labels of every training conversation: one trial's rows (in a seeded random order), split into
    conversations of at most `max_turns` questions, each with the trial's motion once (labelled with
    `motion_loss`)."""
    import numpy as np
    from tqdm.auto import tqdm

    rng = random.Random(seed)
    examples = []
    # One sort and plain lists instead of a pandas group per trial (the same conversations, 7 s sooner on the
    # default corpus).
    ordered = frame.sort_values(["trial_id", "id"])
    trials = ordered["trial_id"].to_numpy()
    questions, answers = ordered["question"].astype(str).tolist(), ordered["answer"].astype(str).tolist()
    codes_column = ordered["motion_codes"].tolist()
    cuts = [0, *(np.flatnonzero(trials[1:] != trials[:-1]) + 1).tolist(), len(trials)] if len(trials) else [0]
    for first, end in tqdm(list(zip(cuts[:-1], cuts[1:])), desc="tokenizing conversations", unit="trial",
                           disable=not progress):
        codes = [int(c) for c in codes_column[first]]
        turns = list(zip(questions[first:end], answers[first:end]))
        rng.shuffle(turns)
        for start in range(0, len(turns), max_turns):
            example = processor.build_training_example(codes, turns[start:start + max_turns],
                                                       label_motion=motion_loss)
            example["trial_id"] = str(trials[first])
            examples.append(example)
    return examples


def _conversations_key(dataset_dir: Path, processor, args: BiomechGPTTrainingArguments) -> str:
    """What the tokenized conversations depend on, hashed: the training shards (name, size, modification time), the
    text tokenizer and chat template, the processor's settings, and the conversation settings."""
    import hashlib

    tokenizer = processor.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    shards = [(f.name, f.stat().st_size, f.stat().st_mtime_ns)
              for f in sorted((dataset_dir / "data").glob("train-*.parquet"))]
    settings = {"shards": shards, "processor": processor.to_json_string(), "max_turns": args.max_turns,
                "seed": args.seed, "motion_loss": args.motion_loss,
                "chat_template": str(getattr(processor, "chat_template", None) or tokenizer.chat_template)}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(vocabulary.encode())
    return digest.hexdigest()[:16]


def _tokenized_conversations(frame, processor, dataset_dir: Path, checkpoints: Path,
                             args: BiomechGPTTrainingArguments) -> list[dict]:
    """`build_conversations`, once per run: the result is kept beside the checkpoints
    (`OUT/checkpoints/conversations-KEY.parquet`) and a rerun that resumes there reads it back instead of tokenizing
    the corpus again, as long as the corpus, the tokenizer and the settings are the same (`_conversations_key`)."""
    import pandas as pd

    path = checkpoints / f"conversations-{_conversations_key(dataset_dir, processor, args)}.parquet"
    if path.is_file():
        try:
            table = pd.read_parquet(path)
            return [{"input_ids": [int(t) for t in ids], "labels": [int(t) for t in labels], "trial_id": str(trial)}
                    for ids, labels, trial in zip(table["input_ids"], table["labels"], table["trial_id"])]
        except (OSError, ValueError, KeyError):  # a damaged cache: tokenize again
            pass
    examples = build_conversations(frame, processor, max_turns=args.max_turns, seed=args.seed,
                                   progress=args.progress, motion_loss=args.motion_loss)
    if int(os.environ.get("RANK", "0")) == 0:
        checkpoints.mkdir(parents=True, exist_ok=True)
        for stale in checkpoints.glob("conversations-*.parquet"):
            stale.unlink(missing_ok=True)
        partial = path.with_suffix(".partial")
        pd.DataFrame(examples, columns=["input_ids", "labels", "trial_id"]).to_parquet(partial)
        os.replace(partial, path)  # a rerun never reads a half-written file
    return examples


CAPTION_QUESTION = "Describe everything you can tell about this recording."


def build_captions(frame, processor, task_kinds: dict[str, str]) -> list[dict]:
    """Stage 2a examples: per trial, one conversation whose answer is the trial's closed-set and numeric answers (the
    corpus's own sentences) in task order, after `CAPTION_QUESTION`.

    A QA conversation spends ~33 tokens on each label (the question, the sentence around the label word); a caption
    carries every label of the trial in ~90 tokens, so the projector and the language model see each label several
    times for the cost of one QA pass: LLaVA's feature-alignment stage, with the corpus's answers as captions.

    The person's labels (diagnosis, device, impairment and its side, falls) give each other away inside one caption;
    measured on the default run's validation trials, 4 caption epochs lift the activity (macro-F1 0.17 -> 0.96) and
    the gait numbers but lower the diagnosis (0.45 -> 0.27; 0.43 after 2 epochs)."""
    examples = []
    # Whole-frame operations instead of a pandas filter and sort per trial: the same captions, 27 s sooner on the
    # default corpus.
    labelled = frame[frame["task"].map(task_kinds).isin(("closed", "numeric"))]
    labelled = labelled.sort_values(["trial_id", "task", "id"]).drop_duplicates(["trial_id", "task"])
    captions = labelled.groupby("trial_id", sort=True)["answer"].agg(lambda a: " ".join(str(x).strip() for x in a))
    codes_of = frame.drop_duplicates("trial_id").set_index("trial_id")["motion_codes"]  # each trial's first row
    for trial_id, caption in captions.items():
        codes = [int(c) for c in codes_of[trial_id]]
        example = processor.build_training_example(codes, [(CAPTION_QUESTION, caption)])
        example["trial_id"] = str(trial_id)
        examples.append(example)
    return examples


class _Collator:
    """Right-pads `input_ids` (pad id), `labels` (-100) and builds `attention_mask`; adds each conversation's motion
    for models that read it: the frozen encoder's soft tokens (`motion_features`, trial id -> tensor) or the feature
    frames (`motion_inputs`, trial id -> `processor.motion_inputs`-style dict)."""

    def __init__(self, pad_token_id: int, motion_features: dict | None = None, motion_inputs: dict | None = None
                 ) -> None:
        self.pad_token_id = pad_token_id
        self.motion_features = motion_features
        self.motion_inputs = motion_inputs

    def __call__(self, features: list[dict]) -> dict:
        import torch

        length = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), length), -100, dtype=torch.long)
        mask = torch.zeros((len(features), length), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"])
            labels[row, :n] = torch.tensor(f["labels"])
            mask[row, :n] = 1
        batch = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        if self.motion_features is not None:
            batch["motion_features"] = torch.stack([self.motion_features[f["trial_id"]] for f in features])
        elif self.motion_inputs is not None:
            from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor

            batch.update(BiomechGPTProcessor.collate_motion_inputs([self.motion_inputs[f["trial_id"]]
                                                                    for f in features]))
        return batch


def _load_cohort(cohort_dir: Any, dataset_dir: Path):
    """The cohort whose motions the corpus was built from: given, or next to the corpus (`DATASET/../cohort`)."""
    from biomechgpt.cohort import load_cohort

    candidates = [Path(cohort_dir)] if cohort_dir is not None else [dataset_dir.parent / "cohort",
                                                                   dataset_dir / "cohort"]
    for folder in candidates:
        if (folder / "trials.parquet").is_file():
            return load_cohort(folder)
    if cohort_dir is not None:
        raise MotionInputError(f"{cohort_dir}: cohort folder not found (no trials.parquet)")
    raise MotionInputError(f"{dataset_dir}: a model that reads continuous motion needs the cohort the corpus was "
                           "built from; none found next to it, pass --cohort DIR")


def _trial_features(cohort, trial_ids, extractor, progress: bool, descriptors: bool = False) -> dict[str, dict]:
    """Trial id -> the whole trial's feature frames, coordinate mask and duration (and its descriptors)."""
    from tqdm.auto import tqdm

    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor

    out = {}
    known = set(cohort.trials["trial_id"])
    missing = [t for t in trial_ids if t not in known]
    if missing:
        raise MotionInputError(f"the cohort lacks {len(missing)} trials of the corpus (e.g. {missing[0]}): was the "
                               "corpus built from another cohort?")
    for trial_id in tqdm(trial_ids, desc="reading motions", unit="trial", disable=not progress):
        motion = extractor.as_motion(cohort.motion(trial_id), name=trial_id)
        values, mask = extractor.motion_to_features(motion)
        out[trial_id] = {"motion_values": values, "coordinate_mask": mask,
                         "motion_duration": motion.n_frames / motion.frame_rate}
        if descriptors:
            out[trial_id]["motion_descriptors"] = BiomechGPTProcessor.encoder_descriptors(motion)
    return out


def _middle_window(item: dict, processor) -> dict:
    """The window of a trial's frames the processor reads at answer time (the middle, padded to 4 frames)."""
    return {**item, "motion_values": processor.crop_frames(item["motion_values"], processor.frame_window)}


def _encode_trials(encoder, windows: dict[str, dict], batch_size: int = 64) -> dict:
    """Trial id -> the (frozen) encoder's soft tokens `(num_motion_tokens, hidden)` of its middle window."""
    import torch

    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor

    ids = sorted(windows, key=lambda t: len(windows[t]["motion_values"]))  # similar lengths share a batch
    out = {}
    encoder.eval()
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            tokens = encoder(**BiomechGPTProcessor.collate_motion_inputs([windows[t] for t in chunk]))
            out.update({t: tokens[k].float().clone() for k, t in enumerate(chunk)})
    return out


# ---------------------------------------------------------------------------------------------------------------------
# model


def _load_motion_tokenizer(motion_tokenizer: Any, dataset_dir: Path):
    """The MotionTokenizer object: given, from a folder, or found next to the corpus (`DATASET/motion_tokenizer` or
    the `biomechgpt run` layout `DATASET/../tokenizer`)."""
    from biomechgpt.processing.tokenization_motion import MotionTokenizer

    if motion_tokenizer is not None and not isinstance(motion_tokenizer, (str, os.PathLike)):
        return motion_tokenizer
    candidates = [Path(motion_tokenizer)] if motion_tokenizer is not None else [
        dataset_dir / "motion_tokenizer", dataset_dir.parent / "tokenizer"]
    for folder in candidates:
        if (folder / "config.json").is_file():
            return MotionTokenizer.from_pretrained(folder)
    if motion_tokenizer is not None:
        raise FileNotFoundError(f"{motion_tokenizer}: MotionTokenizer folder not found (no config.json)")
    raise MotionInputError(f"{dataset_dir}: no MotionTokenizer found next to the corpus; pass --tokenizer DIR")


def _codebook(motion_tokenizer: Any, codebook_size: int):
    """The codebook vectors `(codebook_size, dim)` from the MotionTokenizer's weights, or None."""
    model = getattr(motion_tokenizer, "model", None)
    if model is None:
        return None
    for name, tensor in model.state_dict().items():
        if name.endswith("codebook") and tensor.ndim == 2 and tensor.shape[0] == codebook_size:
            return tensor.detach().float().cpu()
    return None


def _disable_bnb_cpu_repacking(model) -> None:
    """bitsandbytes 0.50 repacks 4-bit weights for AVX512-BF16 CPUs on the first no-grad forward, after which they
    cannot train (no LoRA gradients); keep the trainable layout (see FACTS.md)."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def _load_base(base_model: str, mode: str, texts: list[str], args: BiomechGPTTrainingArguments):
    """(language model, text tokenizer) of the base, before the motion vocabulary is added."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from biomechgpt.processing.processing_biomechgpt import prepare_text_tokenizer
    from biomechgpt.training.tiny_lm import build_tiny_model, is_tiny, train_bpe_tokenizer

    if is_tiny(base_model):
        tokenizer = train_bpe_tokenizer(texts, vocab_size=args.tokenizer_vocab_size)
        return build_tiny_model(base_model, len(tokenizer), seed=args.seed), tokenizer
    tokenizer = prepare_text_tokenizer(AutoTokenizer.from_pretrained(base_model))
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if mode == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    if mode == "qlora":
        _disable_bnb_cpu_repacking(model)
    return model, tokenizer


def _encoder_fields(frame, metadata: dict, args: BiomechGPTTrainingArguments) -> dict[str, Any]:
    """The encoder fields of the model's config: the arguments' shape, plus one readout token per closed-set and
    numeric task of the corpus (`motion_readout`, when stage 1 runs: it trains their heads)."""
    fields: dict[str, Any] = dict(args.motion_encoder)
    if args.motion_input == "codes" or not args.motion_readout or args.encoder_epochs <= 0:
        return fields
    from biomechgpt.training.pretrain_encoder import encoder_targets

    targets = encoder_targets(frame, metadata["task_kinds"], metadata["task_units"])
    sizes = {**{task: len(classes) for task, classes in targets.classes.items()}, **dict.fromkeys(targets.values, 1)}
    fields["num_motion_tokens"] = args.num_motion_tokens + len(sizes)
    fields["motion_readout_tasks"] = list(sizes)
    fields["motion_readout_sizes"] = list(sizes.values())
    if args.encoder_mirror:
        from biomechgpt.processing.motion import MIRROR_ORDER, MIRROR_SIGN
        from biomechgpt.training.pretrain_encoder import mirror_label_order

        fields["motion_mirror_channels"] = list(MIRROR_ORDER)
        fields["motion_mirror_signs"] = list(MIRROR_SIGN)
        fields["motion_readout_mirror"] = [mirror_label_order(targets.classes[task]) if task in targets.classes
                                           else [] for task in sizes]
    return fields


def build_model(base_model: str, mode: str, texts: list[str], motion_tokenizer: Any, codebook_size: int,
                args: BiomechGPTTrainingArguments, encoder_fields: dict[str, Any] | None = None):
    """The untrained `BiomechGPTForCausalLM` around `base_model` and its text tokenizer, as training builds it (the
    release rebuilds an adapter's base with it). `texts` extend a tiny base's vocabulary; `encoder_fields` are the
    motion encoder's config fields (default: from `args`)."""
    from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM

    language_model, tokenizer = _load_base(base_model, mode, texts, args)
    motion_config = motion_tokenizer.config.to_dict() if motion_tokenizer is not None else None
    model = BiomechGPTForCausalLM.from_language_model(
        language_model, tokenizer, codebook_size=codebook_size,
        codebook=_codebook(motion_tokenizer, codebook_size) if motion_tokenizer is not None else None,
        motion_tokenizer_config=motion_config, seed=args.seed, motion_input=args.motion_input,
        motion_encoder=encoder_fields if encoder_fields is not None else args.motion_encoder)
    return model, tokenizer


def _lora_config(model, args: BiomechGPTTrainingArguments):
    from peft import LoraConfig

    new_ids = sorted({model.config.motion_start_token_id, model.config.motion_end_token_id,
                      *([model.config.motion_feature_token_id] if model.config.reads_features else []),
                      *model.config.motion_token_ids})
    # The motion encoder and projector are new: they train whole (modules_to_save), never through LoRA.
    whole = ["multi_modal_projector"] + ([] if args.freeze_motion_encoder else ["motion_encoder"])
    return LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        target_modules="all-linear", bias="none", task_type="CAUSAL_LM",
        trainable_token_indices={"embed_tokens": new_ids},
        exclude_modules=r".*(motion_encoder|multi_modal_projector).*" if model.config.reads_features else None,
        modules_to_save=whole if model.config.reads_features else None,
    )


def _wrap_for_mode(model, mode: str, args: BiomechGPTTrainingArguments):
    if mode == "full":
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    with quiet_peft():
        if mode == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
            _disable_bnb_cpu_repacking(model)
        return get_peft_model(model, _lora_config(model, args))


@contextlib.contextmanager
def quiet_peft():
    """peft 0.21 reads `is_gradient_checkpointing`, which transformers 5.24 deprecates: a FutureWarning each run."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


class _NoOptionalKernelAdvice(logging.Filter):
    """Drops bitsandbytes' advice to install the optional `kernels` package (a faster 4-bit CPU matmul, fetched from
    the Hub): training works without it, and the line came with every run on an AVX512-BF16 CPU."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pip install kernels" not in str(record.msg)


def quiet_optional_kernel_advice() -> None:
    """Install `_NoOptionalKernelAdvice` on bitsandbytes' CPU backend logger (before bitsandbytes is imported)."""
    bnb_logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _NoOptionalKernelAdvice) for f in bnb_logger.filters):
        bnb_logger.addFilter(_NoOptionalKernelAdvice())


def _merged_model(trained, mode: str, base_model: str, texts: list[str], motion_tokenizer: Any, codebook_size: int,
                  args: BiomechGPTTrainingArguments, encoder_fields: dict[str, Any] | None = None):
    """A plain `BiomechGPTForCausalLM` with the adapters merged into full-precision weights."""
    if mode == "full":
        return trained
    if mode == "lora":
        return trained.merge_and_unload()
    # QLoRA: merging into 4-bit weights would round them again; rebuild the base in float32 and merge there.
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    state = get_peft_model_state_dict(trained)
    model, _ = build_model(base_model, "lora", texts, motion_tokenizer, codebook_size, args, encoder_fields)
    if model.config.reads_features:  # the stage-1 encoder (frozen, so not in the adapter's state)
        model.motion_encoder.load_state_dict(trained.get_base_model().motion_encoder.state_dict())
    with quiet_peft():
        peft_model = get_peft_model(model, _lora_config(model, args))
    set_peft_model_state_dict(peft_model, state)
    return peft_model.merge_and_unload()


# ---------------------------------------------------------------------------------------------------------------------
# entry point


def train_model(
    dataset_dir: str | os.PathLike,
    base_model: str = "tiny",
    out_dir: str | os.PathLike = "model",
    *,
    motion_tokenizer: Any = None,
    codebook_size: int | None = None,
    mode: str | None = None,
    seed: int = 0,
    resume: bool = True,
    callbacks: list | None = None,
    cohort_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> Path:
    """Fine-tune `base_model` on the corpus in `dataset_dir` and save a `BiomechGPTForCausalLM` folder to `out_dir`.

    Args:
        dataset_dir (`str` or `os.PathLike`): a QA corpus folder (`data/train-*.parquet`; the processor answers
            with its `answer_space.json`, or with the train split's when the folder predates that file).
        base_model (`str`, *optional*, defaults to `"tiny"`): "tiny-s" / "tiny" / "tiny-l" (embedded, trained from
            scratch), a Hub id or a local model folder.
        out_dir (`str` or `os.PathLike`): the model folder to write.
        motion_tokenizer (`MotionTokenizer` or path, *optional*): the tokenizer that made the corpus's codes;
            looked up next to the corpus when omitted. Saved under `OUT/motion_tokenizer/`.
        codebook_size (`int`, *optional*): only without a MotionTokenizer (tests): the number of motion codes.
        mode (`str`, *optional*): "lora", "qlora" or "full" (see [`BiomechGPTTrainingArguments`]).
        seed (`int`, *optional*, defaults to 0): same seed, same weights.
        resume (`bool`, *optional*, defaults to `True`): continue from the newest checkpoint in `OUT/checkpoints/`.
        callbacks (`list[TrainerCallback]`, *optional*): extra `Trainer` callbacks.
        cohort_dir (`str` or `os.PathLike`, *optional*): the cohort the corpus was built from, whose motions a model
            that reads continuous motion trains on; looked up next to the corpus (`DATASET/../cohort`) when omitted.
        **kwargs: any other field of [`BiomechGPTTrainingArguments`].

    Returns:
        `Path` of the model folder.
    """
    quiet_optional_kernel_advice()  # before transformers' Trainer imports peft, which imports bitsandbytes
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor
    from biomechgpt.training.tiny_lm import is_tiny

    args = BiomechGPTTrainingArguments(mode=mode, seed=seed, **kwargs)
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    mode = args.mode or ("full" if is_tiny(base_model) else "lora")
    if is_tiny(base_model) and mode != "full":
        raise MotionInputError(f"base model {base_model!r} starts from random weights: train it with mode 'full'")
    if not is_tiny(base_model) and not Path(base_model).exists() and "/" not in str(base_model):
        raise MotionInputError(f"base model {base_model!r}: not a folder, a Hub id (owner/name) or an embedded size")
    frame = load_corpus(dataset_dir, "train")
    if codebook_size is None or motion_tokenizer is not None:
        motion_tokenizer = _load_motion_tokenizer(motion_tokenizer, dataset_dir)
        codebook_size = motion_tokenizer.codebook_size
    biggest = max(max(codes) for codes in frame["motion_codes"] if len(codes))
    if biggest >= codebook_size:
        raise MotionInputError(f"{dataset_dir}: motion code {biggest} does not fit codebook_size {codebook_size}")
    aligns = args.alignment_epochs > 0 and args.motion_input != "codes"  # stage 2a: models that read features
    texts = sorted(set(frame["question"].astype(str)) | set(frame["answer"].astype(str))
                   | ({CAPTION_QUESTION} if aligns else set()))

    set_seed(args.seed)
    metadata = load_answer_space(dataset_dir, frame)
    encoder_fields = _encoder_fields(frame, metadata, args)
    model, tokenizer = build_model(base_model, mode, texts, motion_tokenizer, codebook_size, args, encoder_fields)
    processor = BiomechGPTProcessor(
        tokenizer, motion_tokenizer, motion_token_offset=model.config.motion_token_offset,
        codebook_size=codebook_size, max_motion_codes=args.max_motion_codes, motion_input=args.motion_input,
        num_motion_tokens=encoder_fields["num_motion_tokens"],
        motion_descriptors=model.config.motion_descriptor_size > 0, **metadata)
    checkpoints = out_dir / CHECKPOINTS
    examples = _tokenized_conversations(frame, processor, dataset_dir, checkpoints, args)
    motion_features = motion_inputs = encoder_summary = None
    if model.config.reads_features:
        motion_features, motion_inputs, encoder_summary = _prepare_motion_encoder(
            model, processor, frame, metadata, dataset_dir, cohort_dir, args)
    trainable = _wrap_for_mode(model, mode, args)

    bf16 = args.bf16 if args.bf16 is not None else (is_tiny(base_model) and mode == "full" and fast_bf16())
    learning_rate = args.learning_rate or (2e-3 if is_tiny(base_model) else 5e-4 if mode != "full" else 5e-5)
    last = _last_checkpoint(checkpoints) if resume else None
    captions = build_captions(frame, processor, metadata["task_kinds"]) if aligns and last is None else None
    estimate = _announce_estimate(trainable, mode, examples, captions, args, bf16, last)

    def stage_arguments(output_dir: Path, epochs: float, max_steps: int) -> TrainingArguments:
        return TrainingArguments(
            output_dir=str(output_dir),
            num_train_epochs=epochs,
            max_steps=max_steps,
            per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            learning_rate=learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=args.warmup_ratio,
            weight_decay=args.weight_decay,
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
            seed=args.seed,
            data_seed=args.seed,
            train_sampling_strategy="group_by_length",
            logging_steps=args.logging_steps,
            save_strategy="steps",
            save_steps=args.save_steps,
            save_total_limit=args.save_total_limit,
            report_to="none",
            disable_tqdm=not args.progress,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            ddp_find_unused_parameters=False,
            activation_checkpointing=args.gradient_checkpointing,
            **args.extra,
        )

    collator = _Collator(processor.pad_token_id, motion_features, motion_inputs)
    alignment = None
    if captions is not None:
        # A QA checkpoint already holds the aligned weights: stage 2a only runs (or resumes) before the first one.
        aligner = Trainer(model=trainable, args=stage_arguments(checkpoints / "alignment", args.alignment_epochs, -1),
                          train_dataset=captions, data_collator=collator, callbacks=callbacks)
        last_alignment = _last_checkpoint(checkpoints / "alignment") if resume else None
        aligned = aligner.train(resume_from_checkpoint=str(last_alignment) if last_alignment else None)
        alignment = {"epochs": args.alignment_epochs, "conversations": len(captions),
                     "tokens": int(sum(len(e["input_ids"]) for e in captions)),
                     "steps": int(aligner.state.global_step), "train_loss": float(aligned.training_loss),
                     "train_runtime_s": float(aligned.metrics.get("train_runtime", 0.0)),
                     "loss_curve": [{"step": e["step"], "loss": e["loss"]}
                                    for e in aligner.state.log_history if "loss" in e]}
    trainer = Trainer(model=trainable, args=stage_arguments(checkpoints, args.epochs, args.max_steps),
                      train_dataset=examples, data_collator=collator, callbacks=callbacks)
    result = trainer.train(resume_from_checkpoint=str(last) if last else None)

    if trainer.is_world_process_zero():
        if mode != "full":  # the PEFT adapter itself, before merging changes the layers it lives in
            trainable.save_pretrained(out_dir / "adapter")
        final = _merged_model(trainer.model if mode == "full" else trainable, mode, base_model, texts,
                              motion_tokenizer, codebook_size, args, encoder_fields)
        final = getattr(final, "module", final)
        final.config.use_cache = True
        save_dtype = args.save_dtype or _stored_dtype(base_model)
        if save_dtype != "float32":
            final = final.to(getattr(torch, save_dtype))
        final.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
        history = [entry for entry in trainer.state.log_history if "loss" in entry]
        motion_ids = {final.config.motion_end_token_id, *final.config.motion_token_ids}
        summary = {
            "base_model": str(base_model), "mode": mode, "seed": args.seed,
            "train_conversations": len(examples), "train_rows": int(len(frame)),
            "train_tokens": int(sum(len(e["input_ids"]) for e in examples)),
            "answer_tokens": int(sum(sum(1 for t in e["labels"] if t != -100 and t not in motion_ids)
                                     for e in examples)),
            "motion_loss_tokens": int(sum(sum(1 for t in e["labels"] if t in motion_ids) for e in examples)),
            "parameters": int(sum(p.numel() for p in final.parameters())),
            "steps": int(trainer.state.global_step), "train_loss": float(result.training_loss),
            "first_loss": history[0]["loss"] if history else None,
            "final_loss": history[-1]["loss"] if history else None,
            "train_runtime_s": float(result.metrics.get("train_runtime", 0.0)),
            "arguments": asdict(args) | {"learning_rate": learning_rate, "bf16": bf16, "save_dtype": save_dtype},
            "loss_curve": [{"step": e["step"], "loss": e["loss"]} for e in history],
            "motion_encoder": encoder_summary,
            "alignment": alignment,
            "estimate": estimate.to_dict(),
        }
        (out_dir / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        _write_model_card(out_dir, summary)
        if not args.keep_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return out_dir


def _announce_estimate(model, mode: str, examples: list[dict], captions: list[dict] | None,
                       args: BiomechGPTTrainingArguments, bf16: bool, last: Path | None):
    """Estimate the run's time and peak memory before its first step (see `biomechgpt.training.estimate`), or what
    is left of it when resuming from the checkpoint `last`; print it with the progress bar, and a warning line
    whatever the settings when the run will take hours or more memory than the machine has."""
    import sys

    from biomechgpt.training.estimate import estimate_training

    done = 0
    if last is not None:
        try:
            done = int(json.loads((last / "trainer_state.json").read_text())["global_step"])
        except (OSError, ValueError, KeyError):
            done = 0
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    common = dict(mode=mode, batch_size=args.batch_size, gradient_accumulation_steps=args.gradient_accumulation_steps,
                  gradient_checkpointing=args.gradient_checkpointing, bf16=bf16, world_size=world_size)
    estimate = estimate_training(model, [len(e["input_ids"]) for e in examples], epochs=args.epochs,
                                 max_steps=args.max_steps, completed_steps=done, **common)
    if captions:
        estimate = estimate_training(model, [len(e["input_ids"]) for e in captions], epochs=args.alignment_epochs,
                                     matmul_flops=estimate.matmul_flops,
                                     memory_budget_bytes=estimate.memory_budget_bytes, **common).then(estimate)
    if int(os.environ.get("RANK", "0")) == 0:
        if args.progress:
            sys.stderr.write(estimate.describe() + "\n")
        for line in estimate.warnings():
            sys.stderr.write(f"warning: {line}\n")
    return estimate


def _prepare_motion_encoder(model, processor, frame, metadata: dict, dataset_dir: Path, cohort_dir: Any,
                            args: BiomechGPTTrainingArguments) -> tuple[dict | None, dict | None, dict]:
    """Stage 1 (the encoder reads motion, trained alone on every task's targets), then what stage 2 feeds the
    model: the frozen encoder's soft tokens per trial, or the feature frames when the encoder keeps training."""
    from biomechgpt.training.pretrain_encoder import encoder_targets, pretrain_motion_encoder

    cohort = _load_cohort(cohort_dir, dataset_dir)
    extractor = processor.feature_extractor
    train_ids = sorted(frame["trial_id"].unique())
    descriptors = processor.motion_descriptors
    features = _trial_features(cohort, train_ids, extractor, args.progress, descriptors)
    summary: dict[str, Any] = {"encoder_epochs": args.encoder_epochs, "frozen": args.freeze_motion_encoder}
    if args.encoder_epochs > 0:
        targets = encoder_targets(frame, metadata["task_kinds"], metadata["task_units"])
        validation = _optional_split(dataset_dir, "validation")
        val_features = val_targets = None
        if validation is not None:
            val_features = _trial_features(cohort, sorted(validation["trial_id"].unique()), extractor, args.progress,
                                           descriptors)
            val_targets = encoder_targets(validation, metadata["task_kinds"], metadata["task_units"],
                                          classes=targets.classes)
        summary |= pretrain_motion_encoder(
            model.motion_encoder, features, targets, validation_features=val_features,
            validation_targets=val_targets, epochs=args.encoder_epochs, batch_size=args.encoder_batch_size,
            learning_rate=args.encoder_learning_rate, window=processor.frame_window, seed=args.seed,
            progress=args.progress, mirror=args.encoder_mirror)
        _calibrate_readout(model.config, summary["readout_calibration"], args)
    windows = {t: _middle_window(item, processor) for t, item in features.items()}
    if args.freeze_motion_encoder:
        model.motion_encoder.requires_grad_(False)
        return _encode_trials(model.motion_encoder, windows), None, summary
    return None, windows, summary


def _calibrate_readout(config, calibration: dict, args: BiomechGPTTrainingArguments) -> None:
    """Store what answers need to read the stage-1 readout heads, and how much they count. An encoder that keeps
    training in stage 2 changes its heads for the language model's loss: their outputs no longer mean a class or a
    value, so they do not count then."""
    if not config.motion_readout_tasks or not args.freeze_motion_encoder or args.readout_answer_weight <= 0:
        return
    config.motion_readout_labels = [calibration["labels"].get(task, []) for task in config.motion_readout_tasks]
    config.motion_readout_scales = [calibration["scales"].get(task, []) for task in config.motion_readout_tasks]
    config.readout_answer_weight = float(args.readout_answer_weight)


def _optional_split(dataset_dir: Path, split: str):
    """The rows of a split, or `None` when the corpus has none."""
    try:
        return load_corpus(dataset_dir, split)
    except CorpusError:
        return None


def _stored_dtype(base_model: str) -> str:
    """The dtype a pretrained base's weights are stored in ("float32" for the embedded sizes and when unknown)."""
    from biomechgpt.training.tiny_lm import is_tiny

    if is_tiny(base_model):
        return "float32"
    try:
        from transformers import AutoConfig

        stored = str(getattr(AutoConfig.from_pretrained(base_model), "dtype", None) or "float32")
    except (OSError, ValueError):
        return "float32"
    stored = stored.replace("torch.", "")
    return stored if stored in SAVE_DTYPES else "float32"


def fast_bf16() -> bool:
    """Whether bfloat16 is computed natively here: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or AMX.

    Measured on the project's 2-core machines: with AVX512-BF16 bf16 autocast trains the tiny model ~2.5x faster
    than float32; on an AVX2-only CPU the same step is ~10x slower (emulated)."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def _last_checkpoint(folder: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    return Path(get_last_checkpoint(str(folder))) if folder.is_dir() and get_last_checkpoint(str(folder)) else None


def _write_model_card(out_dir: Path, summary: dict) -> None:
    """A minimal model card; `biomechgpt evaluate` / `run` replace it with one that holds the results."""
    card = f"""---
library_name: transformers
tags: [biomechgpt, motion-language-model, gait, clinical]
license: apache-2.0
---

# BiomechGPT ({summary['base_model']}, {summary['mode']})

A motion-language model that answers clinical questions about a movement recorded as joint angles. Load it with:

```python
import biomechgpt
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("{out_dir.name}")
print(model.answer("walk.mot", "What activity is the person performing?"))
```

Trained with `biomechgpt train` on {summary['train_rows']} question-answer pairs about simulated movement
({summary['train_conversations']} conversations, {summary['steps']} steps, final training loss
{summary['final_loss']}). Not a medical device; simulated training data.
"""
    (out_dir / "README.md").write_text(card)
