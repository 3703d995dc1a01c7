"""The dataset card (`README.md`) of a built corpus folder.

Its YAML header is written with the `datasets` / `huggingface_hub` card classes (as `push_to_hub` writes it), so the
`configs` and `dataset_info` it declares are the ones `datasets.load_dataset(folder)` reads. The body is computed from
the written shards and the cohort tables; it holds no timestamps or absolute paths, so the same seed gives the same
bytes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from .tasks import TASKS
from .templates import QUESTIONS

__all__ = ["write_dataset_card", "size_category"]


def size_category(n: int) -> str:
    """The Hub's `size_categories` bucket of `n` rows."""
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "1M<n<10M"


def _read_columns(folder: Path, columns: list[str]):
    import pandas as pd

    shards = sorted((folder / "data").glob("*.parquet"))
    return pd.concat([pd.read_parquet(p, columns=columns) for p in shards], ignore_index=True)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _yaml_header(info: Any, splits: list[str], n_rows: int) -> str:
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData(
        license=info.license,
        language=["en"],
        pretty_name="BiomechGPT clinical movement QA (simulated cohort)",
        task_categories=["question-answering", "text-generation"],
        tags=["biomechanics", "human-motion", "gait", "clinical", "motion-tokens", "synthetic"],
        size_categories=[size_category(n_rows)],
    )
    # the YAML keeps features and split sizes only: sizes in bytes depend on nothing the reader needs
    dumped = DatasetInfo(features=info.features, splits=info.splits, config_name="default")
    DatasetInfosDict({"default": dumped}).to_dataset_card_data(card_data)
    MetadataConfigs(
        {"default": {"data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits]}}
    ).to_dataset_card_data(card_data)
    return f"---\n{card_data.to_yaml()}\n---\n"


def write_dataset_card(folder: str | Path, info: Any, tables: Any, *, seed: int, questions_per_trial: int | None,
                       codebook_size: int | None, downsample_factor: int | None = None) -> Path:
    """Write `folder/README.md` for a corpus whose shards are already under `folder/data/`.

    Args:
        folder (`str` or `Path`): the corpus folder.
        info (`datasets.DatasetInfo`): the builder's info (features, splits).
        tables (`CohortTables`): the cohort the corpus was built from.
        seed (`int`), questions_per_trial (`int` or `None`), codebook_size (`int` or `None`), downsample_factor
            (`int` or `None`): build settings shown.
    """
    folder = Path(folder)
    rows = _read_columns(folder, ["split", "task", "trial_id", "target_label", "motion_codes"])
    splits = [s for s in info.splits]
    n_rows = len(rows)
    counts = rows.groupby(["task", "split"]).size()

    task_rows = []
    for name, task in TASKS.items():
        per_split = [int(counts.get((name, s), 0)) for s in splits]
        what = ", ".join(task.labels) if task.kind == "classification" else (
            " or ".join(task.units) if task.kind == "numeric" else "free text")
        task_rows.append([f"`{name}`", task.kind, what, len(QUESTIONS[name]), *per_split, sum(per_split)])
    task_rows.append(["**all**", "", "", sum(len(q) for q in QUESTIONS.values()),
                      *[int((rows.split == s).sum()) for s in splits], n_rows])

    participants, trials = tables.participants, tables.trials
    split_rows = [[s, int((participants.split == s).sum()), int((trials.split == s).sum()),
                   int((rows.split == s).sum())] for s in splits]
    hours = float(trials.duration_s.sum()) / 3600.0
    diagnoses = Counter(map(str, participants.diagnosis))
    activities = Counter(map(str, trials.activity))
    code_lengths = rows.drop_duplicates("trial_id").motion_codes.map(len)

    label_rows = []
    for name, task in TASKS.items():
        if task.kind != "classification":
            continue
        per_label = Counter(rows.target_label[rows.task == name])
        label_rows.append([f"`{name}`", ", ".join(f"{label} {per_label.get(label, 0)}" for label in task.labels)])

    example = rows.iloc[:0]
    first_trial = rows.trial_id.iloc[0] if n_rows else None
    if first_trial is not None:
        example = _read_columns(folder, ["trial_id", "task", "question", "answer"])
        example = example[example.trial_id == first_trial]
    example_lines = "\n".join(f"- *{r.task}* — **Q:** {r.question} **A:** {r.answer}" for r in example.itertuples())

    per_trial = questions_per_trial or "every task that applies, once"
    codebook = codebook_size if codebook_size is not None else "unknown"
    factor = downsample_factor if downsample_factor is not None else "(unknown)"
    median_codes = int(code_lengths.median()) if len(code_lengths) else 0
    max_codes = int(code_lengths.max()) if len(code_lengths) else 0
    meta = getattr(tables, "meta", {}) or {}
    provenance = ""
    if "seed" in meta:
        version = meta.get("format_version", "?")
        provenance = f" (`biomechgpt simulate` seed {meta['seed']}, cohort format version {version})"
    body = f"""
# BiomechGPT clinical movement QA (simulated cohort)

Question–answer pairs about human movement, for fine-tuning a motion-language model such as
[BiomechGPT](https://arxiv.org/abs/2505.18465) (Yang, Kennedy and Cotton, 2025). Each row is one question about one
trial, with the trial's motion as discrete MotionTokenizer codes (`motion_codes`), a natural-language answer and the
structured target it states. {n_rows} pairs over {len(trials)} trials of {len(participants)} participants.

Built by `biomechgpt build-dataset`:

- seed {seed}; questions per trial: {per_trial};
- MotionTokenizer codebook size {codebook}, one code per {factor} canonical frames (30 Hz);
- motion codes per trial: median {median_codes}, max {max_codes}.

## Load

```python
from datasets import load_dataset
from biomechgpt.dataset_builder import parse_answer

corpus = load_dataset("path/to/this/folder")          # or the Hub repository id
row = corpus["train"][0]
parse_answer(row["task"], row["answer"])              # -> ParsedAnswer(label=..., value=..., unit=...)
```

The rows of one trial are consecutive and share `trial_id` and `motion_codes`; training code groups them into one
multi-turn conversation so the motion is read once per trial. The raw motion stays in the cohort folder, by `trial_id`.

## Splits

Inherited from the cohort: participant-disjoint (no participant appears in two splits).

{_table(["split", "participants", "trials", "QA pairs"], split_rows)}

## Tasks

{_table(["task", "kind", "labels / unit", "question phrasings", *splits, "total"], task_rows)}

Participant-level labels (`impairment`, `impairment_side`, `diagnosis`, `assistive_device`, `fall_history`) come from
the participants table and are asked on every trial of the participant. Cadence, walking speed and stride length are
asked only where the trial's ground truth is defined (gait trials); `tug_time` and `fsst_time` only on
`timed_up_and_go` and `four_square_step_test` trials. A question may ask for another unit than the canonical one
(speed in km/h, stride length in cm); the answer, `target_value` and `target_unit` then use that unit. Numbers are
rounded as a clinician says them: cadence to whole steps/min, speed and stride length to 0.01 m/s and 0.01 m
(0.1 km/h, 1 cm), test times to 0.1 s.

Labels per classification task (rows):

{_table(["task", "rows per label"], label_rows)}

The `summary` answer is a short clinical description: the activity, then diagnosis, impairment and affected side,
assistive device and fall history in a drawn order, then the trial's measurements. Its `target_label` is the canonical
string of those components (`activity=...; impairment=...; ...; cadence=...`); `parse_answer("summary", text)`
recovers every component (`ParsedAnswer.fields`) and `summary_fields(target_label)` splits the target.

Example: the questions of trial `{first_trial}`:

{example_lines}

## Columns

| column | type | meaning |
| --- | --- | --- |
| `id` | string | `<trial_id>-qNN`, unique |
| `participant_id`, `trial_id` | string | keys into the cohort tables |
| `split` | string | train / validation / test |
| `task` | string | one of the tasks above |
| `question`, `answer` | string | the question and a natural-language answer |
| `target_label` | string or null | canonical label (classification), canonical components (summary) |
| `target_value` | float or null | the number the answer states (numeric tasks) |
| `target_unit` | string or null | unit of `target_value`: steps/min, m/s, km/h, m, cm or s |
| `motion_codes` | list of int32 | the trial's MotionTokenizer codes |
| `activity` | string | the trial's activity label |
| `question_template`, `answer_template` | int32 | which phrasing was used (null answer template for summaries) |

## How the cohort was simulated

The motions are not recordings of people. `biomechgpt simulate` generates a clinical cohort with the structure of
the private data BiomechGPT was trained on: participants with age, sex and body size (leg length scales stride and
cadence), a diagnosis (healthy, stroke, Parkinson's disease, incomplete spinal cord injury, lower-limb amputation,
knee osteoarthritis, cerebral palsy) with a continuous severity, an impaired / unimpaired label and the affected side,
an assistive device drawn from diagnosis and severity, and a history of falls drawn from a probabilistic model of
age, balance and severity (so it is not fully predictable from motion). Joint-angle trajectories in the OpenSim
full-body coordinate set at 30 Hz are generated per activity with diagnosis- and device-specific kinematics,
variation between people, trials and steps, markerless-style noise, random heading, treadmill trials and trials
without arm or lumbar coordinates. Gait measures and timed-test durations are measured from the generated motion.

This cohort: {len(participants)} participants, {len(trials)} trials, {hours:.1f} hours of motion{provenance}.

{_table(["diagnosis", "participants"], [[d, n] for d, n in sorted(diagnoses.items())])}

{_table(["activity", "trials"], [[a, n] for a, n in sorted(activities.items())])}

## Limitations

Synthetic data: labels are consistent with the simulated motion by construction, and a model trained here must be
validated on real recordings before any clinical use. Not a medical device.

## License and citation

Released under CC BY 4.0 (the data are synthetic; no personal data). If you use it, please cite the paper:

```bibtex
{info.citation}
```
"""
    text = _yaml_header(info, splits, n_rows) + body
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
