"""`biomechgpt run --quick`: every stage of the main job on a small configuration, as the README's first command runs
them (each stage a `biomechgpt` child process), and the run folder a user gets."""

from __future__ import annotations

import json

import pytest

from biomechgpt import cli
from biomechgpt.pipeline import STAGES


@pytest.mark.slow
def test_quick_run_produces_a_loadable_model_metrics_and_timings(tmp_path, capsys):
    assert cli.main(["run", "--quick", "--out", str(tmp_path)]) == 0
    run = tmp_path / "quick"
    for folder in ("cohort", "tokenizer", "dataset", "model"):
        assert (run / folder).is_dir(), folder

    timings = json.loads((run / "timings.json").read_text())
    assert list(timings["stages"]) == [stage.name for stage in STAGES]
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
    out = capsys.readouterr().out
    assert "BiomechGPT" in out and "baseline" in out  # the results table at the end

    from transformers import AutoModelForCausalLM

    import biomechgpt
    from biomechgpt.labels import ACTIVITIES

    model = AutoModelForCausalLM.from_pretrained(run / "model")
    motion = biomechgpt.load_cohort(run / "cohort")
    trial_id = motion.trials["trial_id"].iloc[0]
    reply = model.answer(motion.motion(trial_id), "What activity is this?")
    assert reply.task == "activity" and reply.label in ACTIVITIES and 0 < reply.confidence <= 1
