"""The corpus builder: a `datasets.GeneratorBasedBuilder` over a cohort folder and a MotionTokenizer.

`build_dataset` runs the builder (`download_and_prepare` straight to Parquet) and lays the result out as a Hub
dataset repository: `data/{split}-00000-of-00001.parquet` plus a `README.md` card whose YAML `configs` points at the
shards, so `datasets.load_dataset(folder)` reads it with no code (datasets 4+ runs no loading scripts), and the
answer space of the train split (`answer_space.json`, see `answer_space`), which training reads instead of deriving.

Each trial is tokenized once (in batches, before any question is written) and its codes are repeated on every row of
that trial; the rows of one trial are consecutive, so training code can group them into one conversation.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from biomechgpt.labels import SPLITS
from biomechgpt.processing.motion import MotionInputError

from . import cohort_input
from .tasks import CLASSIFICATION_TASKS, NUMERIC_TASKS, TASKS, convert_unit, round_for_unit
from .templates import (
    QUESTIONS,
    answer_choices,
    format_summary_target,
    render_answer,
    render_question,
    render_summary,
    summary_choices,
)

__all__ = ["FEATURES", "BiomechGPTQAConfig", "BiomechGPTQABuilder", "build_dataset", "DATASET_NAME", "LICENSE"]

DATASET_NAME = "biomechgpt_qa"
LICENSE = "cc-by-4.0"
CITATION = """@article{yang2025biomechgpt,
  title   = {BiomechGPT: Towards a Biomechanically Fluent Multimodal Foundation Model for Clinically Relevant
             Motion Tasks},
  author  = {Yang, Ruize and Kennedy, Ann and Cotton, R. James},
  journal = {arXiv preprint arXiv:2505.18465},
  year    = {2025}
}"""

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "participant_id": datasets.Value("string"),
        "trial_id": datasets.Value("string"),
        "split": datasets.Value("string"),
        "task": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "target_label": datasets.Value("string"),
        "target_value": datasets.Value("float64"),
        "target_unit": datasets.Value("string"),
        "motion_codes": datasets.List(datasets.Value("int32")),
        # extras: the trial's activity (to filter or stratify without a join) and which phrasing was used
        "activity": datasets.Value("string"),
        "question_template": datasets.Value("int32"),
        "answer_template": datasets.Value("int32"),
    }
)

# motions handed to the tokenizer per call; trials go in order of length, so each call pads little (in random order a
# call of 256 trials costs 1.7x the frames it holds on the default cohort, in length order about 1.0x)
_TOKENIZE_CHUNK = 512


@dataclass
class BiomechGPTQAConfig(datasets.BuilderConfig):
    """Configuration of the corpus.

    Args:
        cohort_dir (`str`): the cohort folder (`biomechgpt simulate --out`).
        tokenizer_dir (`str`, *optional*): the MotionTokenizer folder; not needed when a tokenizer object is passed
            to the builder.
        seed (`int`, defaults to 0): seeds every choice of task, phrasing and wording. Same seed, same bytes.
        questions_per_trial (`int`, *optional*): questions asked per trial. `None` (default) asks every task that
            applies to the trial once. A number asks that many: the trial's own measurements first (cadence, speed,
            stride, timed test), then the other tasks in a drawn order, repeating tasks with new phrasings when the
            number exceeds the tasks that apply.
    """

    cohort_dir: str | None = None
    tokenizer_dir: str | None = None
    seed: int = 0
    questions_per_trial: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.questions_per_trial is not None and int(self.questions_per_trial) < 1:
            raise ValueError(f"questions_per_trial must be at least 1, got {self.questions_per_trial}")


class BiomechGPTQABuilder(datasets.GeneratorBasedBuilder):
    """Builds the BiomechGPT question–answer corpus from a cohort folder and a MotionTokenizer.

    Args:
        tokenizer (*optional*): an already loaded tokenizer (anything with `__call__(list_of_motions)` returning
            `motion_codes` and `motion_codes_mask`, and `codebook_size`); else `config.tokenizer_dir` is loaded.
        **kwargs: `datasets.DatasetBuilder` arguments (`cache_dir`, ...) and `BiomechGPTQAConfig` fields.

    Example:
        >>> builder = BiomechGPTQABuilder(cohort_dir="run/cohort", tokenizer_dir="run/tokenizer", cache_dir="tmp")
        >>> builder.download_and_prepare()
        >>> corpus = builder.as_dataset()
    """

    BUILDER_CONFIG_CLASS = BiomechGPTQAConfig
    BUILDER_CONFIGS = [BiomechGPTQAConfig(name="default", version=datasets.Version("1.0.0"))]
    DEFAULT_CONFIG_NAME = "default"

    def __init__(self, *args: Any, tokenizer: Any = None, **kwargs: Any) -> None:
        self._tokenizer = tokenizer
        self._tables: cohort_input.CohortTables | None = None
        self._codes: dict[str, np.ndarray] = {}
        kwargs.setdefault("dataset_name", DATASET_NAME)
        super().__init__(*args, **kwargs)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="Question–answer pairs about tokenized human movement from a simulated clinical cohort.",
            features=FEATURES,
            license=LICENSE,
            citation=CITATION,
        )

    # --- preparation: read the cohort and tokenize every trial once ----------------------------------------------

    def prepare_inputs(self) -> None:
        """Read and check the cohort tables, load the tokenizer and tokenize every trial (once per builder)."""
        if self._tables is not None:
            return
        if not self.config.cohort_dir:
            raise MotionInputError("BiomechGPTQABuilder: cohort_dir is required")
        tables = cohort_input.read_cohort_tables(self.config.cohort_dir)
        if self._tokenizer is None:
            self._tokenizer = load_motion_tokenizer(self.config.tokenizer_dir)
        self._codes = tokenize_trials(tables, self._tokenizer)
        self._tables = tables

    @property
    def tables(self) -> cohort_input.CohortTables:
        self.prepare_inputs()
        return self._tables

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        self.prepare_inputs()
        present = set(self._tables.trials.split)
        return [datasets.SplitGenerator(name=s, gen_kwargs={"split": s}) for s in SPLITS if s in present]

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        self.prepare_inputs()
        trials = self._tables.trials
        rows = trials[trials.split == split].sort_values("trial_id", kind="stable")
        people = self._tables.participants
        participants = people[people.split == split].to_dict("index")  # a dict lookup per trial, not a .loc
        for trial in rows.to_dict("records"):
            participant = participants[trial["participant_id"]]
            codes = self._codes[trial["trial_id"]].tolist()
            for example in questions_for_trial(participant, trial, self.config.seed, self.config.questions_per_trial):
                example["motion_codes"] = codes
                yield example["id"], example


# --- one trial's questions ----------------------------------------------------------------------------------------


def _trial_rng(seed: int, trial_id: str) -> np.random.Generator:
    # keyed by trial, so a trial's questions do not depend on which other trials the cohort holds
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(trial_id.encode("utf-8"))])


def trial_targets(participant: dict[str, Any], trial: dict[str, Any]) -> dict[str, str | float]:
    """Every task's ground truth for one trial (label or canonical-unit value); tasks undefined for it are absent."""
    out: dict[str, str | float] = {}
    for name, task in TASKS.items():
        target = task.target(participant, trial)
        if target is not None:
            out[name] = target
    return out


def _choose_tasks(targets: dict[str, Any], k: int | None, rng: np.random.Generator) -> list[str]:
    applicable = [name for name in TASKS if name in targets or name == "summary"]
    if k is None:
        chosen = applicable
    else:
        measured = [name for name in applicable if name in NUMERIC_TASKS]
        others = [applicable[i] for i in rng.permutation(len(applicable))] if applicable else []
        others = [name for name in others if name not in measured]
        pool = measured + others
        chosen = [pool[i % len(pool)] for i in range(k)]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def questions_for_trial(participant: dict[str, Any], trial: dict[str, Any], seed: int = 0,
                        questions_per_trial: int | None = None) -> list[dict[str, Any]]:
    """The question–answer rows of one trial (without `motion_codes`), drawn deterministically from `seed`."""
    if questions_per_trial is not None and int(questions_per_trial) < 1:
        raise ValueError(f"questions_per_trial must be at least 1, got {questions_per_trial}")
    trial_id = str(trial["trial_id"])
    rng = _trial_rng(seed, trial_id)
    targets = trial_targets(participant, trial)
    rows = []
    for k, task in enumerate(_choose_tasks(targets, questions_per_trial, rng)):
        q_index = int(rng.integers(len(QUESTIONS[task])))
        question, unit = render_question(task, q_index)
        label: str | None = None
        value: float | None = None
        a_index: int | None
        kind = TASKS[task].kind
        if kind == "classification":
            label = str(targets[task])
            n_templates, n_phrases = answer_choices(task, label=label)
            a_index = int(rng.integers(n_templates))
            answer = render_answer(task, label=label, template=a_index, phrase=int(rng.integers(n_phrases)))
        elif kind == "numeric":
            value = round_for_unit(convert_unit(float(targets[task]), TASKS[task].unit, unit), unit)
            n_templates, n_phrases = answer_choices(task, unit=unit)
            a_index = int(rng.integers(n_templates))
            answer = render_answer(task, value=value, unit=unit, template=a_index, phrase=int(rng.integers(n_phrases)))
        else:
            fields = {name: targets[name] for name in CLASSIFICATION_TASKS + NUMERIC_TASKS if name in targets}
            choices = {slot: int(rng.integers(n)) for slot, n in summary_choices(fields).items()}
            answer = render_summary(fields, choices)
            label, unit, a_index = format_summary_target(fields), None, None
        rows.append({
            "id": f"{trial_id}-q{k:02d}",
            "participant_id": str(trial["participant_id"]),
            "trial_id": trial_id,
            "split": str(trial["split"]),
            "task": task,
            "question": question,
            "answer": answer,
            "target_label": label,
            "target_value": value,
            "target_unit": unit if kind == "numeric" else None,
            "activity": str(trial["activity"]),
            "question_template": q_index,
            "answer_template": a_index,
        })
    return rows


# --- tokenizer --------------------------------------------------------------------------------------------------


def load_motion_tokenizer(folder: str | Path | None) -> Any:
    """Load the MotionTokenizer saved in `folder`, with one-line errors for a missing or wrong folder."""
    if folder is None:
        raise MotionInputError("a MotionTokenizer folder is required (--tokenizer DIR)")
    folder = Path(folder)
    if not folder.is_dir():
        raise MotionInputError(f"tokenizer folder {folder}: {'not a folder' if folder.exists() else 'not found'}")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise MotionInputError(f"tokenizer folder {folder}: no config.json (train one with `biomechgpt "
                               "train-tokenizer`)")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (ValueError, AttributeError) as err:
        raise MotionInputError(f"{config_path}: not valid JSON ({err})") from None
    if model_type != "biomechgpt_motion_tokenizer":
        raise MotionInputError(f"{config_path}: model_type is {model_type!r}, not a MotionTokenizer "
                               "('biomechgpt_motion_tokenizer')")
    from biomechgpt.processing.tokenization_motion import MotionTokenizer

    try:
        return MotionTokenizer.from_pretrained(folder)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        message = " ".join(str(err).split())
        raise MotionInputError(f"tokenizer folder {folder}: could not be loaded ({message})") from None


def tokenize_trials(tables: cohort_input.CohortTables, tokenizer: Any,
                    progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Motion codes of every trial in the cohort, tokenized once each, in batches. Returns trial id -> int32 codes."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    by_length = tables.trials.sort_values(["n_frames", "trial_id"], kind="stable")
    wanted = [str(t) for t in by_length.trial_id]
    codes: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(wanted), desc="Tokenizing trials", unit=" trials", leave=False) if tqdm else None
    ids: list[str] = []
    motions: list[Any] = []

    def flush() -> None:
        try:
            batch = tokenizer(motions)
        except MotionInputError as err:
            raise MotionInputError(f"trials {ids[0]}..{ids[-1]}: the MotionTokenizer rejected a motion ({err})") \
                from None
        values = np.asarray(batch["motion_codes"])
        mask = np.asarray(batch["motion_codes_mask"]).astype(bool)
        for row, trial_id in enumerate(ids):
            codes[trial_id] = values[row][mask[row]].astype(np.int32)
        if bar is not None:
            bar.update(len(ids))
        ids.clear()
        motions.clear()

    try:
        for trial_id, motion in cohort_input.iter_cohort_motions(tables.folder, wanted):
            ids.append(str(trial_id))
            motions.append(motion)
            if len(motions) >= _TOKENIZE_CHUNK:
                flush()
        if motions:
            flush()
    finally:
        if bar is not None:
            bar.close()
    missing = [t for t in wanted if t not in codes]
    if missing:
        raise MotionInputError(f"cohort folder {tables.folder}: no stored motion for trial(s) "
                               f"{', '.join(map(str, missing[:5]))}")
    size = getattr(tokenizer, "codebook_size", None)
    if size is not None:
        for trial_id, c in codes.items():
            if c.size == 0:
                raise MotionInputError(f"trial {trial_id}: the tokenizer returned no motion codes")
            if c.min() < 0 or c.max() >= int(size):
                raise MotionInputError(f"trial {trial_id}: the tokenizer returned codes outside [0, {size})")
    return codes


# --- the folder ---------------------------------------------------------------------------------------------------


def _check_out_dir(out: Path, overwrite: bool, inputs: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise MotionInputError(f"output folder {out}: exists and is not a folder")
    resolved = out.resolve()
    for path in inputs:
        p = path.resolve()
        if resolved == p or resolved in p.parents:
            raise MotionInputError(f"output folder {out}: would overwrite the input folder {path}")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise MotionInputError(f"output folder {out}: exists and is not empty (pass --overwrite to replace it)")


def build_dataset(
    cohort_dir: str | Path,
    tokenizer_dir: str | Path | None,
    out_dir: str | Path,
    *,
    seed: int = 0,
    questions_per_trial: int | None = None,
    overwrite: bool = False,
    tokenizer: Any = None,
) -> Path:
    """Build the question–answer corpus and write it as a Hub-style dataset folder.

    Args:
        cohort_dir (`str` or `Path`): the cohort folder (`biomechgpt simulate --out`).
        tokenizer_dir (`str` or `Path`, *optional*): the MotionTokenizer folder (`biomechgpt train-tokenizer --out`).
        out_dir (`str` or `Path`): where to write `data/{split}-00000-of-00001.parquet`, `README.md` and
            `answer_space.json` (see `answer_space.write_answer_space`).
        seed (`int`, defaults to 0): same seed, same bytes.
        questions_per_trial (`int`, *optional*): see `BiomechGPTQAConfig`; default asks every applicable task once.
        overwrite (`bool`, defaults to `False`): replace a non-empty `out_dir`.
        tokenizer (*optional*): an already loaded tokenizer to use instead of `tokenizer_dir`.

    Returns:
        `Path`: `out_dir`. `datasets.load_dataset(str(out_dir))` loads it.

    Raises:
        `MotionInputError`: a missing or invalid cohort or tokenizer folder, or an existing non-empty `out_dir`.
    """
    from .answer_space import write_answer_space
    from .card import write_dataset_card

    if questions_per_trial is not None and int(questions_per_trial) < 1:
        raise MotionInputError(f"questions_per_trial must be at least 1, got {questions_per_trial}")
    out = Path(out_dir)
    inputs = [Path(cohort_dir)] + ([Path(tokenizer_dir)] if tokenizer_dir is not None else [])
    _check_out_dir(out, overwrite, inputs)
    cohort_input.read_cohort_tables(cohort_dir)  # fail fast, before loading any model
    if tokenizer is None:
        tokenizer = load_motion_tokenizer(tokenizer_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}-build-", dir=out.parent))
    try:
        builder = BiomechGPTQABuilder(
            cache_dir=str(stage / "cache"),
            tokenizer=tokenizer,
            cohort_dir=str(cohort_dir),
            tokenizer_dir=None if tokenizer_dir is None else str(tokenizer_dir),
            seed=int(seed),
            questions_per_trial=questions_per_trial,
        )
        builder.prepare_inputs()
        prepared = stage / "prepared"
        builder.download_and_prepare(output_dir=str(prepared), file_format="parquet",
                                     download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD)
        final = stage / "final"
        (final / "data").mkdir(parents=True)
        for split in builder.info.splits:
            shards = sorted(prepared.glob(f"{DATASET_NAME}-{split}*.parquet"))
            for i, shard in enumerate(shards):
                shard.rename(final / "data" / f"{split}-{i:05d}-of-{len(shards):05d}.parquet")
        write_dataset_card(final, builder.info, builder.tables, seed=int(seed),
                           questions_per_trial=questions_per_trial,
                           codebook_size=getattr(tokenizer, "codebook_size", None),
                           downsample_factor=getattr(tokenizer, "downsample_factor", None))
        # written in the staging folder so that `out` never holds shards without their answer space; a cohort
        # without training participants has no training rows to learn one from
        if "train" in builder.info.splits:
            write_answer_space(final)
        if out.exists():
            shutil.rmtree(out) if overwrite else out.rmdir()
        final.rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out

