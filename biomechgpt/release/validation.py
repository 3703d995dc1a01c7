"""Validating a staged release before anything is uploaded.

A model (or adapter) folder is loaded with the Auto classes twice, once with the package and once as remote code in
a fresh interpreter in which `import biomechgpt` fails (`biomechgpt/release/remote_check.py`, run by its path),
asked the same questions about the same motion through both, and the answers must agree: exactly where that is well
defined, within `ANSWER_ATOL` / `ANSWER_RTOL` where float noise is legitimate. An adapter's base + adapter must also
reproduce the merged model's weights and answers. A dataset folder must load with `datasets.load_dataset(folder)`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from biomechgpt.release import remote_check
from biomechgpt.release.staging import ReleaseError, check_safetensors, list_files, refuse_pickles

__all__ = [
    "ANSWER_ATOL",
    "ANSWER_RTOL",
    "validate_model_release",
    "validate_adapter_release",
    "validate_dataset_release",
]

# How closely base + adapter must reproduce the merged weights: float32 round-off of the merge (~1e-7), plus, for a
# run saved in bfloat16 / float16, two units in the last place of that dtype (relative).
_ADAPTER_ATOL = 1e-4


def _check_card(folder: Path, *, need_results: bool) -> dict:
    from huggingface_hub import ModelCard

    path = folder / "README.md"
    if not path.is_file():
        raise ReleaseError(f"{folder}: no README.md model card")
    card = ModelCard.load(path)
    results = card.data.eval_results or []
    if need_results and not results:
        raise ReleaseError(f"{path}: the model card has no model-index results (run biomechgpt evaluate, or pass "
                           "--metrics)")
    if "trust_remote_code=True" not in card.text:
        raise ReleaseError(f"{path}: the model card does not say how to load the model without the package")
    return {"results": len(results)}


def _validation_motion(processor) -> Any:
    """A fixed motion for the answer comparison: a smooth gait-like float array when a MotionTokenizer is bundled
    (it turns it into codes) or the model reads motion frames, else a fixed code sequence."""
    import numpy as np

    tokenizer = getattr(processor, "motion_tokenizer", None)
    if tokenizer is None and not getattr(processor, "reads_features", False):
        size = processor.codebook_size or 16
        return [int(i * 7 % size) for i in range(32)]
    extractor = tokenizer.feature_extractor if tokenizer is not None else processor.feature_extractor
    n_coords = len(extractor.coordinates)
    t = np.arange(120, dtype=np.float64)[:, None] / (tokenizer or extractor).frame_rate
    phase = np.arange(n_coords, dtype=np.float64)[None] * 0.37
    return (0.3 * np.sin(2 * np.pi * 0.9 * t + phase)).astype(np.float32)  # (frames, coords) radians


def _validation_questions(processor) -> tuple[list[str], list[str | None]]:
    questions, tasks = [], []
    for task in sorted(processor.task_kinds):
        examples = processor.task_questions.get(task) or []
        if examples:
            questions.append(examples[0])
            tasks.append(task)
    if not questions:
        raise ReleaseError("the processor knows no tasks (processor_config.json task_questions is empty)")
    return questions, tasks


# How closely two loads of a release (package and remote code; merged model and adapter) must agree.
# Exact: the motion codes and each answer's question, task, label and unit.
# Within ANSWER_ATOL + ANSWER_RTOL * |reference value|: the confidence, value and spread, and the log-likelihood each
# load gives the reference load's answer text. These are float results that legitimately differ in the last digits:
# the remote check runs with one thread, the package with several, and reductions then sum in another order.
# Generated text itself is not compared: greedy decoding may break a near-tie the other way after the same
# probabilities (a closed-set answer is fixed by its label, a graded numeric one by its value, and any answer's text
# is checked through its likelihood under both loads).
ANSWER_ATOL = 1e-3
ANSWER_RTOL = 1e-3
_FLOAT_FIELDS = ("confidence", "value", "spread")
_EXACT_FIELDS = ("question", "task", "label", "unit")


def _answers(model, processor, motion, reference: dict | None = None) -> dict:
    """The validation questions' answers, and the log-likelihood of the `reference` answers' texts (default: these
    answers' own texts). The remote-code check asks and scores with the same functions (`remote_check`)."""
    codes, asked = remote_check.motion_for_answers(processor, motion)
    questions, tasks = _validation_questions(processor)
    answers = model.answer_batch([asked] * len(questions), questions, tasks=tasks, processor=processor,
                                 max_new_tokens=24)
    texts = [a["answer"] for a in reference["answers"]] if reference else [a.answer for a in answers]
    return {"codes": codes, "answers": [a.to_dict() for a in answers],
            "log_likelihoods": remote_check.answer_log_likelihoods(model, processor, codes, motion, questions, texts)}


def _remote_answers(folder: Path, motion: Any, processor, reference: dict, base: Path | None = None,
                    timeout: int = 600) -> dict:
    """Load `folder` as remote code in a fresh, isolated interpreter (`-I`, no PYTHONPATH, cwd outside the repo,
    `biomechgpt` blocked) that runs `remote_check.py` by its path, answer the validation questions there and score
    the `reference` answers' texts."""
    with tempfile.TemporaryDirectory(prefix="biomechgpt-remote-") as tmp:
        tmp = Path(tmp)
        motion_path, questions_path, reference_path, out = (tmp / name for name in (
            "motion.json", "questions.json", "reference.json", "answers.json"))
        payload = motion if isinstance(motion, list) else {"values": motion.tolist()}
        motion_path.write_text(json.dumps(payload))
        questions_path.write_text(json.dumps(list(_validation_questions(processor))))
        reference_path.write_text(json.dumps([a["answer"] for a in reference["answers"]]))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "HF_HUB_OFFLINE": "1",
               "HF_HOME": str(tmp / "hf"), "HF_MODULES_CACHE": str(tmp / "modules"), "OMP_NUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        # by its path, not `python -m`: that would import the package first; `-I` keeps the file's own folder (and
        # so its sibling modules) off sys.path
        done = subprocess.run(
            [sys.executable, "-I", str(Path(remote_check.__file__).resolve()), str(folder.resolve()),
             str(base.resolve()) if base else "", str(motion_path), str(out), str(questions_path),
             str(reference_path)],
            env=env, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
            raise ReleaseError(f"{folder}: does not load with trust_remote_code=True without the package "
                               f"({last[0].strip()[:300]})")
        return json.loads(out.read_text())


def _close(reference: float | None, other: float | None) -> bool:
    if reference is None or other is None:
        return reference is None and other is None
    return math.isclose(other, reference, rel_tol=ANSWER_RTOL, abs_tol=ANSWER_ATOL)


def _compare_answers(folder: Path, reference: dict, other: dict, processor: Any,
                     names: tuple[str, str] = ("with the package", "as remote code")) -> None:
    """Require `other` (a second load's answers, with the log-likelihoods of `reference`'s texts) to agree with
    `reference`: exactly on the codes, questions, tasks, labels and units, within `ANSWER_ATOL` / `ANSWER_RTOL` on
    confidences, values, spreads and answer log-likelihoods. The error names the question, the field and both
    values.

    A generated answer's label, value and unit are read back from its text, with the QA corpus's parser where the
    package is installed and a plain number otherwise (`processor.parse_answer`): they legitimately differ between
    the two loads, so such answers are compared through the likelihood of their text only."""
    first, second = names
    generated = {t for t, kind in processor.task_kinds.items()
                 if kind != "closed" and t not in processor.numeric_answers}
    if reference["codes"] != other["codes"]:
        raise ReleaseError(f"{folder}: the bundled MotionTokenizer gives different codes {first} and {second}")
    if len(reference["answers"]) != len(other["answers"]):
        raise ReleaseError(f"{folder}: {len(reference['answers'])} answers {first} but {len(other['answers'])} "
                           f"{second}")
    tolerance = f"tolerance {ANSWER_ATOL:g} + {ANSWER_RTOL:g} x |value|"
    for k, (mine, theirs) in enumerate(zip(reference["answers"], other["answers"])):
        question = mine["question"]
        from_text = mine.get("task") is None or mine.get("task") in generated
        for key in _EXACT_FIELDS[:2] if from_text else _EXACT_FIELDS:
            if mine.get(key) != theirs.get(key):
                raise ReleaseError(f"{folder}: {question!r}: {key} is {mine.get(key)!r} {first} but "
                                   f"{theirs.get(key)!r} {second}")
        for key in () if from_text else _FLOAT_FIELDS:
            if not _close(mine.get(key), theirs.get(key)):
                raise ReleaseError(f"{folder}: {question!r}: {key} is {mine.get(key)!r} {first} but "
                                   f"{theirs.get(key)!r} {second} ({tolerance})")
        ours, their = reference["log_likelihoods"][k], other["log_likelihoods"][k]
        if not _close(ours, their):
            raise ReleaseError(f"{folder}: {question!r}: the log-likelihood of the answer {mine['answer']!r} is "
                               f"{ours!r} {first} but {their!r} {second} ({tolerance})")


def _local_load(folder: Path, base: Path | None = None):
    import biomechgpt  # noqa: F401  (registers the Auto classes)
    from transformers import AutoModelForCausalLM, AutoProcessor

    from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM
    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor

    try:
        if base is None:
            model = AutoModelForCausalLM.from_pretrained(folder)
        else:
            from peft import PeftModel

            from biomechgpt.training.train_lm import quiet_peft

            with quiet_peft():
                model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder)
            model = model.merge_and_unload()
        processor = AutoProcessor.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as err:
        raise ReleaseError(f"{folder}: does not load with the Auto classes ({' '.join(str(err).split())[:300]})"
                           ) from None
    if not isinstance(model, BiomechGPTForCausalLM) or not isinstance(processor, BiomechGPTProcessor):
        raise ReleaseError(f"{folder}: the Auto classes gave {type(model).__name__} / {type(processor).__name__}")
    return model.eval(), processor


def validate_model_release(folder: str | os.PathLike, *, remote_code: bool = True, need_results: bool = True) -> dict:
    """Check a staged model folder: safetensors only, a model card with results, loads with `AutoModelForCausalLM` /
    `AutoProcessor` (package installed) and, when `remote_code`, with `trust_remote_code=True` in a fresh process
    without the package, giving the same answers to the same questions about the same motion (see `ANSWER_ATOL` for
    what "the same" means).

    Returns:
        `dict` with `files`, `card` and `answers` (and `remote_answers`).
    """
    folder = Path(folder)
    refuse_pickles(folder, "release")
    check_safetensors(folder)
    report: dict[str, Any] = {"files": list_files(folder), "card": _check_card(folder, need_results=need_results)}
    model, processor = _local_load(folder)
    motion = _validation_motion(processor)
    report["answers"] = _answers(model, processor, motion)
    if remote_code:
        remote = _remote_answers(folder, motion, processor, report["answers"])
        if remote["model_module"].startswith("biomechgpt") or remote["processor_module"].startswith("biomechgpt"):
            raise ReleaseError(f"{folder}: the remote-code check loaded the installed package")
        _compare_answers(folder, report["answers"], remote, processor)
        report["remote_answers"] = remote
    return report


def validate_adapter_release(adapter: str | os.PathLike, base: str | os.PathLike, *, model_dir=None,
                             remote_code: bool = True) -> dict:
    """Check a staged adapter and its base: both load (base alone; base + adapter with peft, with and without the
    package), the adapter's answers equal those of the merged model in `model_dir` (when given), and its weights
    reproduce that model's within 1e-4."""
    import torch

    adapter, base = Path(adapter), Path(base)
    for folder in (adapter, base):
        refuse_pickles(folder, "release")
        check_safetensors(folder)
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise ReleaseError(f"{adapter}: not a PEFT adapter folder (adapter_config.json, adapter_model.safetensors)")
    report: dict[str, Any] = {"files": list_files(adapter), "base_files": list_files(base),
                              "card": _check_card(adapter, need_results=True)}
    _check_card(base, need_results=False)
    model, processor = _local_load(adapter, base=base)
    motion = _validation_motion(processor)
    report["answers"] = _answers(model, processor, motion)
    if model_dir is not None:
        merged, _ = _local_load(Path(model_dir))
        merged_state = merged.state_dict()
        worst, worst_name = 0.0, None
        for name, weight in model.state_dict().items():
            reference = merged_state[name].float()
            rtol = 0.0 if weight.dtype == torch.float32 else 2 * torch.finfo(weight.dtype).eps
            excess = ((weight.float() - reference).abs() - rtol * reference.abs()).max()
            if float(excess) > worst:
                worst, worst_name = float(excess), name
        report["max_weight_difference"] = worst
        if worst > _ADAPTER_ATOL:
            raise ReleaseError(f"{adapter}: base + adapter differ from the merged model by {worst:.2e} "
                               f"({worst_name}): was the merged model trained with this adapter?")
        merged_answers = _answers(merged, processor, motion, reference=report["answers"])
        _compare_answers(adapter, report["answers"], merged_answers, processor,
                         names=("by base + adapter", "by the merged model"))
        del merged
    if remote_code:
        remote = _remote_answers(adapter, motion, processor, report["answers"], base=base)
        _compare_answers(adapter, report["answers"], remote, processor)
        report["remote_answers"] = remote
    del model
    torch.set_grad_enabled(True)
    return report


_CORPUS_COLUMNS = ("id", "question", "answer", "task", "motion_codes")


def validate_dataset_release(folder: str | os.PathLike) -> dict:
    """Check a staged dataset folder loads with `datasets.load_dataset(folder)` and has the corpus columns.

    Returns:
        `dict` with `splits` (split -> rows) and `files`.
    """
    import datasets

    folder = Path(folder)
    refuse_pickles(folder, "release")
    with tempfile.TemporaryDirectory(prefix="biomechgpt-dataset-check-") as cache:
        try:
            loaded = datasets.load_dataset(str(folder), cache_dir=cache)
        except Exception as err:  # datasets raises many types for a malformed card or shard
            raise ReleaseError(f"{folder}: does not load with datasets.load_dataset "
                               f"({' '.join(str(err).split())[:300]})") from None
        splits = {name: split.num_rows for name, split in loaded.items()}
        for name, split in loaded.items():
            missing = [c for c in _CORPUS_COLUMNS if c not in split.column_names]
            if missing:
                raise ReleaseError(f"{folder}: split {name} lacks columns {', '.join(missing)}")
        del loaded
    if not splits or not any(splits.values()):
        raise ReleaseError(f"{folder}: the dataset has no rows")
    return {"splits": splits, "files": list_files(folder)}
