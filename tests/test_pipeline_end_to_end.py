"""`biomechgpt run --quick`: every stage of the main job on a small configuration, as the README's first command runs
them (each stage a `biomechgpt` child process), killed with SIGKILL part-way and continued by running the same command
again (the `quick_run` fixture in conftest.py), and the run folder a user gets."""

from __future__ import annotations

import json

import pytest

from biomechgpt.pipeline import STAGES


@pytest.mark.slow
def test_a_killed_run_continues_from_its_last_finished_stage(quick_run):
    run = quick_run.run
    assert quick_run.killed_after == ["simulate"]
    if quick_run.stage_outlived_pipeline is not None:  # Linux: the stage process died with the pipeline
        assert quick_run.stage_outlived_pipeline is False
    assert quick_run.status == 0, quick_run.output[-3000:]
    assert "== [1/5] simulate: finished earlier, skipped ==" in quick_run.output
    assert "== [1/5] simulate ==" not in quick_run.output and "== [2/5] train_tokenizer ==" in quick_run.output
    assert (run / "cohort" / "participants.parquet").stat().st_mtime_ns == quick_run.cohort_mtime_ns
    assert json.loads((run / "run.json").read_text())["finished_stages"] == [stage.name for stage in STAGES]
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_quick_run_produces_a_loadable_model_metrics_and_timings(quick_run):
    run = quick_run.run
    assert quick_run.status == 0, quick_run.output[-3000:]
    for folder in ("cohort", "tokenizer", "dataset", "model"):
        assert (run / folder).is_dir(), folder

    timings = json.loads((run / "timings.json").read_text())
    assert list(timings["stages"]) == [stage.name for stage in STAGES]  # the killed run's simulate included
    for stage in timings["stages"].values():
        assert stage["wall_s"] > 0 and stage["peak_rss_mb"] > 50
    assert timings["total_wall_s"] >= sum(s["wall_s"] for s in timings["stages"].values()) - 1e-6

    metrics = json.loads((run / "metrics.json").read_text())
    for task in ("activity", "impairment", "diagnosis", "assistive_device", "fall_history"):
        entry = metrics["tasks"][task]
        assert entry["n"] > 0 and {"accuracy", "macro_f1"} <= set(entry["biomechgpt"]) and entry["baseline"]
    for task in ("cadence", "walking_speed"):
        assert {"mae", "pearson_r"} <= set(metrics["tasks"][task]["biomechgpt"])
    assert (run / "report.md").is_file() and "model-index" in (run / "model" / "README.md").read_text()
    assert "BiomechGPT" in quick_run.output and "baseline" in quick_run.output  # the results table at the end

    # held-out wordings: `ask` routes each to a task and asks the task's training question, so every wording the
    # router places right gets one and the same answer
    from transformers import AutoProcessor

    from biomechgpt.evaluation.evaluate import heldout_questions

    wordings, processor = metrics["wordings"], AutoProcessor.from_pretrained(run / "model")
    assert set(wordings["overall"]) == {"model", "ask"}
    for task, entry in wordings["tasks"].items():
        assert entry["n_trials"] > 0 and 0 <= entry["model"]["unchanged"] <= 1
        if all(processor.route_question(q).task == task for q in heldout_questions()[task]):
            assert entry["ask"]["unchanged"] == 1.0, task
    assert "Question wordings the model was not trained on" in (run / "report.md").read_text()

    from transformers import AutoModelForCausalLM

    import biomechgpt
    from biomechgpt.labels import ACTIVITIES

    model = AutoModelForCausalLM.from_pretrained(run / "model")
    motion = biomechgpt.load_cohort(run / "cohort")
    trial_id = motion.trials["trial_id"].iloc[0]
    reply = model.answer(motion.motion(trial_id), "What activity is this?")
    assert reply.task == "activity" and reply.label in ACTIVITIES and 0 < reply.confidence <= 1


def _activity_rates(run) -> tuple[float, float, float]:
    """(majority-class rate, BiomechGPT accuracy, baseline accuracy) on the quick run's activity test questions."""
    import pandas as pd

    predictions = pd.read_parquet(run / "predictions.parquet")
    activity = predictions[predictions.task == "activity"]
    majority = float(activity.reference.value_counts(normalize=True).iloc[0])
    metrics = json.loads((run / "metrics.json").read_text())["tasks"]["activity"]
    return majority, metrics["biomechgpt"]["accuracy"], metrics["baseline"]["accuracy"]


@pytest.mark.slow
def test_quick_run_learned_something_a_broken_run_would_not(quick_run):
    """Floors a broken run misses, with margin below what the quick run reaches (measured: language-model loss 4.82
    at step 25 -> 3.44 at step 50; baseline activity accuracy 0.93 against a majority-class rate of 0.49). A run whose
    model never trains, or whose corpus pairs questions with the wrong motion, falls under them."""
    run = quick_run.run
    assert quick_run.status == 0, quick_run.output[-3000:]
    summary = json.loads((run / "model" / "training_summary.json").read_text())
    assert summary["final_loss"] < 0.85 * summary["first_loss"], (summary["first_loss"], summary["final_loss"])
    majority, _, baseline = _activity_rates(run)
    assert baseline > majority + 0.2, (baseline, majority)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the quick run's model answers every activity question with one label "
                   "(measured: accuracy 0.08 against a majority-class rate of 0.49); when it beats the majority rate "
                   "this xfail turns into a failure: make it an assertion")
def test_quick_run_model_beats_the_majority_class_on_activity(quick_run):
    majority, accuracy, _ = _activity_rates(quick_run.run)
    assert accuracy > majority + 0.1, (accuracy, majority)
