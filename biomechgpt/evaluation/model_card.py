"""The model card (`model_card.md` / the model folder's `README.md`) written from the evaluation's results.

Hugging Face format: YAML front matter whose `model-index` holds the test-split metrics (built with
`huggingface_hub.ModelCardData`, so the Hub parses it), then intended use, training data, results against the
baseline, the sim-to-real check, limitations, how to load and reproduce, and the paper's citation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biomechgpt.evaluation.report import (
    experiment_lines,
    glossary_lines,
    metric_name,
    participant_lines,
    sim_to_real_summary_lines,
    task_name,
    wording_lines,
)
from biomechgpt.metrics import METRICS_BY_TASK

__all__ = ["write_model_card", "render_model_card", "CITATION"]

CITATION = """@article{yang2025biomechgpt,
  title   = {BiomechGPT: Towards a Biomechanically Fluent Multimodal Foundation Model for Clinically Relevant
             Motion Tasks},
  author  = {Yang, Ruize and Kennedy, Kevin and Cotton, R. James},
  journal = {arXiv preprint},
  year    = {2025}
}"""

# metrics that go into model-index per kind of task
_INDEX_METRICS = {"classification": ("accuracy", "macro_f1"), "regression": ("pearson_r", "mae"),
                  "text": ("token_f1",)}
# glossary terms the card's tables use, defined under "Evaluation" before them
_CARD_TERMS = ("n", "unparsed", "accuracy", "macro-F1", "Pearson r", "MAE", "word-overlap F1")


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def _card_data(metrics: dict, model_name: str, dataset_name: str, base_model: str | None):
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    for task, entry in metrics.get("tasks", {}).items():
        kind = METRICS_BY_TASK.get(task, "text")
        for metric in _INDEX_METRICS[kind]:
            value = entry.get("biomechgpt", {}).get(metric)
            if value is None:
                continue
            results.append(EvalResult(
                task_type="text-generation",
                task_name=task_name(task),
                dataset_type=dataset_name,
                dataset_name=f"{dataset_name} (simulated, participant-disjoint test split)",
                dataset_split="test",
                # One config per task: results that share task type and dataset would otherwise be merged by the Hub
                # under the first task's name.
                dataset_config=task,
                metric_type=metric,
                metric_name=f"{task_name(task)} {metric.replace('_', ' ')}",
                metric_value=round(float(value), 4),
            ))
    return ModelCardData(
        model_name=model_name,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["biomechanics", "motion", "gait", "clinical", "motion-language", "vq-vae", "custom_code"],
        datasets=[dataset_name],
        base_model=base_model,
        eval_results=results or None,
    )


def render_model_card(
    metrics: dict,
    *,
    model_name: str = "biomechgpt-tiny",
    repo_id: str | None = None,
    dataset_name: str = "biomechgpt-qa-simulated",
    base_model: str | None = None,
    model_description: str | None = None,
    motion_input: str = "continuous",
    readout_answer_weight: float = 0.0,
) -> str:
    """The model card's Markdown text (YAML front matter included) from a `metrics.json` payload.

    `motion_input` is the model's `config.motion_input` ("codes", "continuous" or "both"), `readout_answer_weight` its
    `config.readout_answer_weight` (how much the encoder's task heads count in its answers)."""
    data = _card_data(metrics, model_name, dataset_name, base_model)
    where = repo_id or "path/to/model"
    tasks = metrics.get("tasks", {})
    description = model_description or (
        "a small causal language model, trained from scratch here, whose vocabulary is extended with the motion "
        "tokens")
    motion_input = {"codes": "the discrete motion tokens only, as in the paper",
                    "continuous": "the soft tokens of the motion encoder",
                    "both": "the soft tokens, then the discrete motion tokens"}.get(motion_input, motion_input)
    lines = [
        "---", data.to_yaml().strip(), "---", "",
        f"# {model_name}", "",
        "BiomechGPT answers clinical questions about human movement. A **motion encoder** (a temporal convolutional "
        "network over the joint-angle frames, OpenSim coordinates at 30 Hz) turns a recording into a few soft tokens "
        "that a projector places in the embedding space of a causal language model "
        f"({description}), as LLaVA places image patches; a VQ-VAE **MotionTokenizer** also turns the motion into "
        "discrete motion tokens (one per 4 frames), which the model can read instead of or beside the soft tokens "
        f"(this model reads: {motion_input}). The model answers in words: the activity, whether and on which side "
        "the gait is impaired, the likely diagnosis, the assistive device, fall history, cadence, walking speed, "
        "stride length and timed-test durations. "
        + (f"Closed-set and numeric answers weigh two readings of the motion: the language model's likelihood of "
           f"each candidate answer, and the motion encoder's own head for the task (trained on the task's targets "
           f"before the language model; its reading also reaches the language model as a readout token), at weight "
           f"{readout_answer_weight:g} against the language model's 1. " if readout_answer_weight > 0 else "")
        + "It follows the approach of BiomechGPT (Yang, Kennedy & Cotton, 2025) and is packaged the Hugging Face way.",
        "",
        "## Intended use", "",
        "- **Users:** researchers and developers in rehabilitation, biomechanics and movement science, working "
        "with joint angles from markerless video (e.g. OpenCap) or motion capture.",
        "- **Uses:** research on motion-language models; prototyping question answering over movement recordings; "
        "a baseline for models trained on real clinical data.",
        "- **Out of scope:** any clinical decision, diagnosis, screening or fall-risk assessment of a person. This "
        "is **not a medical device** and has not been validated on patients.", "",
        "## How to use", "",
        "With the package installed (`pip install biomechgpt`):", "",
        "```python",
        "import biomechgpt",
        "from transformers import AutoModelForCausalLM",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{where}")',
        'motion = biomechgpt.load_motion("trial.mot")  # .mot / .sto / .csv / .npz, any coordinate order',
        'answer = model.answer(motion, "What activity is the person doing?")',
        "print(answer.answer, answer.label, answer.confidence)",
        "```", "",
        "Without the package, the model folder carries its own code:", "",
        "```python",
        "from transformers import AutoModelForCausalLM",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{where}", trust_remote_code=True)',
        "# a float array (frames, 33) of canonical coordinates at 30 Hz (see biomechgpt.CANONICAL_COORDINATES)",
        'answer = model.answer(motion_values, "What is the cadence in steps per minute?")',
        "print(answer.value, answer.unit, answer.spread)",
        "```", "",
        "On the command line: `biomechgpt ask --model DIR --motion trial.mot --question \"Is the gait impaired?\"`.",
        "",
        "## Training data", "",
        "Entirely **simulated**. The paper trained on about 500 real participants; that data is private, so "
        "`biomechgpt simulate` generates a cohort with the same structure: participants with age, sex and "
        "anthropometry; diagnoses (healthy, stroke, Parkinson's disease, incomplete spinal cord injury, lower-limb "
        "amputation, knee osteoarthritis, cerebral palsy) with a severity, impairment label and affected side; "
        "assistive devices; a fall history drawn from a probabilistic model; walking at three speeds, running, "
        "sit-to-stand, squat, jump, stairs, Timed Up and Go, Four Square Step Test, standing balance, tandem "
        "walking and turning. Joint-angle patterns are calibrated against real OpenSim recordings and changed per "
        "diagnosis and device; ground truth (cadence, speed, stride length, test times) is measured from the "
        "generated motion. `biomechgpt build-dataset` turns it into question–answer pairs with many phrasings per "
        "task, split by participant (train / validation / test)." + _split_sizes(metrics), "",
        "## Evaluation", "",
        "On the simulated, participant-disjoint test split, against a non-language-model baseline trained on the "
        "same rows (per task, the better, on the validation participants, of gradient-boosted trees on standard gait "
        "features and a small 1-D convolutional network on the joint angles). Closed-set tasks (the answer is one of "
        "a fixed set of classes) are scored by accuracy and macro-F1, numeric ones by Pearson r and MAE.",
        *glossary_lines(_CARD_TERMS, level=3), "",
        "| task | n | metric | BiomechGPT | baseline |", "| --- | ---: | --- | ---: | ---: |",
    ]
    for task, entry in tasks.items():
        kind = METRICS_BY_TASK.get(task, "text")
        for metric in _INDEX_METRICS[kind]:
            ours = entry.get("biomechgpt", {}).get(metric)
            base = entry.get("baseline", {}).get(metric)
            lines.append(f"| {task_name(task)} | {entry.get('n')} | {metric_name(metric)} | {_fmt(ours)} | "
                         f"{_fmt(base)} |")
    ceiling = tasks.get("fall_history", {}).get("ceiling", {})
    if ceiling.get("accuracy") is not None:
        lines += ["", f"Fall history is not fully predictable from motion by construction: the best achievable "
                      f"accuracy from the simulator's own probabilities is {_fmt(ceiling['accuracy'])}."]
    check = metrics.get("sim_to_real", {})
    lines += participant_lines(tasks)
    lines += ["", "### Real recordings (sim-to-real check)", ""]
    if check.get("summary"):
        lines.append("Real recordings the model never saw: OpenSim example data (normal and crouch gait cycles, "
                     "overground walking, treadmill running) and a healthy adult's treadmill walking processed by "
                     "AddBiomechanics; cadence is checked against the period of each file's knee angles:")
        lines.append("")
        lines += sim_to_real_summary_lines(check["summary"])
    else:
        lines.append(check.get("skipped", "Not run."))
    wordings = metrics.get("wordings", {})
    if wordings.get("overall"):
        lines += wording_lines(wordings, level=3)
    lines += experiment_lines(metrics.get("experiments", {}), level=3)
    lines += [
        "", "## Limitations", "",
        "- **Not a medical device.** Do not use it to diagnose, screen or manage anyone.",
        "- **Simulated training and test data.** All numbers above are on a simulated cohort whose labels are "
        "consistent with the generated motion by construction; they say the model learned the simulator, not "
        "that it works on patients. Real movement disorders vary far more than the simulator models.",
        "- **What was checked on real data:** only activity (walking / running), normal versus crouch gait and "
        "cadence on a few public recordings (above). Diagnosis, assistive device, fall history, side of "
        "impairment, speed, stride length and timed-test estimates were **not** validated on real recordings.",
        "- Inputs must be joint angles of an OpenSim full-body model; the readers convert common conventions, "
        "but unusual models or very noisy tracking fall outside the training distribution.",
        "- The default language model is tiny and trained from scratch: it answers the corpus's kinds of "
        "questions, not open conversation.", "",
        "## How to reproduce", "",
        "```bash",
        "pip install -e .",
        "biomechgpt run   # simulate -> train-tokenizer -> build-dataset -> train -> evaluate, into runs/default/",
        "biomechgpt evaluate --model runs/default/model --dataset runs/default/dataset \\",
        "    --cohort runs/default/cohort --out runs/default --experiments transfer,size",
        "```", "",
        "Every stage takes a seed; the same seed gives the same bytes.", "",
        "## Citation", "",
        "```bibtex", CITATION, "```", "",
    ]
    return "\n".join(lines)


def _split_sizes(metrics: dict) -> str:
    """" This model's corpus: N training, ... participants." from `metrics.json`, or nothing for older files."""
    counts = metrics.get("info", {}).get("participants") or {}
    if not all(isinstance(counts.get(s), int) for s in ("train", "validation", "test")):
        return ""
    return (f" This model's corpus: {counts['train']:,} training, {counts['validation']:,} validation and "
            f"{counts['test']:,} test participants.")


def write_model_card(metrics: dict, out_path: str | Path, **kwargs: Any) -> str:
    """Writes the model card for a `metrics.json` payload to `out_path` and returns its text.

    Args:
        metrics (`dict`): the evaluation payload (`{"tasks": ..., "experiments": ..., "sim_to_real": ...}`).
        out_path (`str` or `Path`): where to write (e.g. `model_card.md` or the model folder's `README.md`).
        **kwargs: `model_name`, `repo_id`, `dataset_name`, `base_model`, `model_description` (see
            `render_model_card`).
    """
    text = render_model_card(metrics, **kwargs)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
