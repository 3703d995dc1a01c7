"""`evaluate_model`, the report, the model card, the experiments and the `biomechgpt evaluate` command, on a small
synthetic corpus with a fake answering model (the real model and corpus are exercised by the pipeline test)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_evaluation_fakes import FakeModel, fake_corpus, fake_parse, fake_trials, synthetic_motion, write_corpus

from biomechgpt.cli import UsageError, main
from biomechgpt.evaluation import evaluate_model, fall_history_ceiling, render_model_card
from biomechgpt.evaluation.baseline import BaselineSettings
from biomechgpt.evaluation.common import predictions_frame
from biomechgpt.evaluation import evaluate as evaluate_module
from biomechgpt.evaluation.evaluate import (
    REFERENCE_MOTION_ENV,
    CADENCE_TOLERANCE,
    _reference_check,
    _wording_check,
    default_reference_dir,
    heldout_questions,
    knee_period_cadence,
    parse_prediction,
    reference_expectations,
)
from biomechgpt.evaluation.experiments import ExperimentSettings, run_experiments

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def corpus_and_motions(tmp_path_factory):
    trials, motions = fake_trials(seed=2)
    corpus = fake_corpus(trials)
    folder = tmp_path_factory.mktemp("dataset")
    write_corpus(corpus, folder)
    return corpus, motions, folder


@pytest.fixture(scope="module")
def evaluated(corpus_and_motions, tmp_path_factory):
    corpus, motions, folder = corpus_and_motions
    out = tmp_path_factory.mktemp("evaluation")
    settings = BaselineSettings(gbt_max_iter=40, cnn_steps=30, cnn_channels=16, cnn_batch_size=16)
    metrics = evaluate_model(FakeModel(corpus), folder, out, motion_source=motions.__getitem__, parser=fake_parse,
                             baseline_settings=settings, sim_to_real=False, progress=False)
    return metrics, out, corpus


def test_metrics_json_scores_every_task_like_for_like(evaluated):
    metrics, out, corpus = evaluated
    assert json.loads((out / "metrics.json").read_text()) == metrics
    test = corpus[corpus.split == "test"]
    assert set(metrics["tasks"]) == {"activity", "cadence", "walking_speed"}
    for task, entry in metrics["tasks"].items():
        assert entry["n"] == int((test.task == task).sum())
        assert {"biomechgpt", "baseline", "baseline_families"} <= set(entry)
        assert entry["baseline"]["family"] in ("gbt", "cnn")
    # the fake's known mistakes, counted in the order it is asked (by trial id)
    n = int((test.task == "activity").sum())
    unparsed = [k for k in range(1, n + 1) if k % 7 == 0]
    wrong = [k for k in range(1, n + 1) if k % 5 == 0 and k % 7 != 0]
    ours = metrics["tasks"]["activity"]["biomechgpt"]
    assert ours["n_unparsed"] == len(unparsed)
    assert ours["accuracy"] == pytest.approx((n - len(unparsed) - len(wrong)) / n)
    assert ours["confusion_matrix"]["predicted_labels"][-1] == "(unparsed)"
    cadence = metrics["tasks"]["cadence"]["biomechgpt"]
    assert cadence["bias"] == pytest.approx(3.0, abs=0.01) and cadence["pearson_r"] > 0.99
    assert metrics["tasks"]["activity"]["baseline"]["accuracy"] >= 0.9
    assert metrics["experiments"] == {} and metrics["sim_to_real"] == {
        "skipped": "not asked for (sim_to_real=False, --no-sim-to-real)"}


def test_predictions_report_figures_and_card_are_written(evaluated):
    metrics, out, corpus = evaluated
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert len(predictions) == int((corpus.split == "test").sum())
    assert {"answer", "prediction", "prediction_value", "baseline_prediction", "gbt_prediction"} <= set(predictions)
    report = (out / "report.md").read_text()
    for figure in ("figures/confusion_activity.png", "figures/scatter_cadence.png",
                   "figures/scatter_walking_speed.png"):
        assert figure in report and (out / figure).stat().st_size > 1000
    assert "| Activity recognition |" in report and "Skipped:" in report
    card = (out / "model_card.md").read_text()
    assert card.startswith("---\n") and "model-index:" in card and "not a medical device" in card.lower()
    counts = {split: corpus.loc[corpus.split == split, "participant_id"].nunique()
              for split in ("train", "validation", "test")}
    assert metrics["info"]["participants"] == counts
    assert (f"This model's corpus: {counts['train']:,} training, {counts['validation']:,} validation and "
            f"{counts['test']:,} test participants.") in card


def test_model_card_yaml_holds_the_metrics(evaluated):
    from huggingface_hub import ModelCard

    metrics, _, _ = evaluated
    card = ModelCard(render_model_card(metrics, model_name="biomechgpt-test", repo_id="me/biomechgpt"))
    results = card.data.eval_results
    assert {r.metric_type for r in results} == {"accuracy", "macro_f1", "pearson_r", "mae"}
    accuracy = next(r for r in results if r.metric_type == "accuracy")
    assert accuracy.metric_value == pytest.approx(metrics["tasks"]["activity"]["biomechgpt"]["accuracy"], abs=1e-4)
    assert "trust_remote_code=True" in card.text and "Yang" in card.text and "me/biomechgpt" in card.text
    # how the answers are formed: a model whose task heads count says so, with their weight; one without does not
    assert "readout token" not in card.text
    fused = render_model_card(metrics, readout_answer_weight=1.0)
    assert "the motion encoder's own head for the task" in fused and "at weight 1 against" in fused


def test_fall_history_ceiling_by_hand():
    participants = pd.DataFrame({"participant_id": ["a", "b", "c"], "fall_probability": [0.1, 0.7, 0.5]})
    ceiling = fall_history_ceiling(participants, ["a", "a", "b", "zzz"])
    assert ceiling["accuracy"] == pytest.approx((0.9 + 0.9 + 0.7) / 3)
    assert ceiling["per_participant"] == pytest.approx((0.9 + 0.7) / 2)
    assert ceiling["n"] == 3 and ceiling["n_participants"] == 2
    assert fall_history_ceiling(participants, [])["accuracy"] is None


def test_parse_prediction_accepts_parser_shapes():
    class Parsed:
        label, value, unit = None, 4.3, "km/h"

    assert parse_prediction("cadence", "x", lambda t, s: Parsed()) == (None, 4.3, "km/h")
    assert parse_prediction("activity", "x", lambda t, s: "walking") == ("walking", None, None)
    assert parse_prediction("cadence", "x", lambda t, s: 110) == (None, 110.0, None)
    assert parse_prediction("cadence", "  ", lambda t, s: 110) == (None, None, None)


class MotionReadingModel:
    """Answers from the motion it is given, as a model that reads motion would: running when the right knee flexes
    past 90 degrees, impaired when it never straightens below 20 degrees (crouch), a cadence `cadence_offset` above
    the knee period's. Fed the wrong recording, it answers wrong."""

    cadence_offset = 3.0

    def __init__(self, questions: dict[str, str]) -> None:
        self.task_of = {question: task for task, question in questions.items()}

    def answer_batch(self, motions, questions, **kwargs):
        answers = []
        for motion, question in zip(motions, questions, strict=True):
            knee = np.degrees(motion.column("knee_angle_r"))
            if self.task_of[question] == "activity":
                text = "This is running." if knee.max() > 90 else "This is walking."
            elif self.task_of[question] == "cadence":
                text = f"About {knee_period_cadence(motion) + self.cadence_offset:.1f} steps per minute."
            else:
                text = "The gait is impaired." if np.percentile(knee, 5) > 20 else "The gait is unimpaired."
            answers.append({"question": question, "answer": text, "confidence": 0.9})
        return answers


def motion_parse(task: str, text: str):
    if task == "impairment":
        return {"label": "unimpaired" if "unimpaired" in text else "impaired" if "impaired" in text else None}
    return fake_parse(task, text)


def _with_impairment(corpus: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([corpus, corpus.head(1).assign(task="impairment", question="Is the gait impaired?", split="test",
                                                    id="zz")])


def test_sim_to_real_check_on_the_real_recordings(reference_motion_dir, corpus_and_motions):
    corpus = _with_impairment(corpus_and_motions[0])
    test = corpus[corpus.split == "test"].sort_values("id")
    questions = {"activity": str(test[test.task == "activity"].question.iloc[0]),
                 "impairment": "Is the gait impaired?", "cadence": str(test[test.task == "cadence"].question.iloc[0])}
    check = _reference_check(MotionReadingModel(questions), None, corpus, reference_motion_dir, motion_parse)
    assert check["questions"] == questions
    by_file = {r["file"]: r for r in check["recordings"]}
    assert {"normal.mot", "crouch1.mot", "crouch3.mot", "subject01_walk1_ik.mot", "subject02_running_ik.mot"} <= \
        set(by_file)
    # the sub-folder of treadmill walking, without the file that holds other movements too
    treadmill = {name for name in by_file if name.startswith("treadmill_walking_expert3/")}
    assert len(treadmill) == 12 and "treadmill_walking_expert3/S01DE503.mot" not in treadmill
    assert all("error" not in r and "biomechgpt_error" not in r for r in check["recordings"])
    assert by_file["subject02_running_ik.mot"]["activity"]["biomechgpt"] == "running"
    assert by_file["crouch3.mot"]["impairment"]["biomechgpt"] == "impaired"
    assert by_file["normal.mot"]["impairment"]["biomechgpt"] == "unimpaired"
    for record in check["recordings"]:  # each recording's answer is the one its own motion gives
        for task in ("activity", "impairment"):
            assert record[task]["biomechgpt"] == record[task]["expected"], (record["file"], task)
    # cadence only where there are 3 s of gait: the treadmill files (109-116 steps/min) and the running trial
    with_cadence = {name for name, r in by_file.items() if "cadence" in r}
    assert with_cadence == treadmill | {"subject02_running_ik.mot"}
    for name in treadmill:
        assert 105 < by_file[name]["cadence"]["expected"] < 120, name
    assert 160 < by_file["subject02_running_ik.mot"]["cadence"]["expected"] < 185
    n = len(by_file)
    summary = check["summary"]
    assert {task: summary[task] for task in ("activity", "impairment")} == {
        task: {"n": n, "biomechgpt_accuracy": 1.0, "baseline_accuracy": None} for task in ("activity", "impairment")}
    assert summary["cadence"]["n"] == 13 and summary["cadence"]["tolerance"] == CADENCE_TOLERANCE
    assert summary["cadence"]["biomechgpt_mae"] == pytest.approx(3.0, abs=0.06)  # the fake's offset
    assert summary["cadence"]["biomechgpt_within_tolerance"] == 1.0 and summary["cadence"]["baseline_mae"] is None
    assert reference_expectations("crouch3.mot") == {"activity": "walking", "impairment": "impaired"}
    assert reference_expectations("treadmill_walking_expert3/S01DE507.mot")["activity"] == "walking"
    assert reference_expectations("treadmill_walking_expert3/S01DE503.mot") is None
    assert reference_expectations("README.md") is None

    # a cadence far off counts against the model
    MotionReadingModel.cadence_offset = 12.0
    try:
        off = _reference_check(MotionReadingModel(questions), None, corpus, reference_motion_dir, motion_parse)
    finally:
        MotionReadingModel.cadence_offset = 3.0
    assert off["summary"]["cadence"]["biomechgpt_within_tolerance"] == 0.0
    assert off["summary"]["cadence"]["biomechgpt_mae"] == pytest.approx(12.0, abs=0.06)


@pytest.mark.parametrize("cadence", [62.0, 96.0, 113.0, 171.0])
def test_knee_period_cadence_finds_the_stride_of_a_known_gait(cadence):
    motion = synthetic_motion("running" if cadence > 150 else "walking", cadence, 1.2, 8.0, seed=int(cadence))
    assert knee_period_cadence(motion) == pytest.approx(cadence, abs=1.0)
    short = synthetic_motion("walking", cadence, 1.2, 2.5, seed=1)
    assert knee_period_cadence(short) is None  # under 3 s of gait
    still = synthetic_motion("standing_balance", cadence, 0.0, 8.0, seed=1)
    assert knee_period_cadence(still) is None  # no knee movement, no period


def test_default_reference_dir_env_checkout_or_none(monkeypatch, tmp_path):
    monkeypatch.delenv(REFERENCE_MOTION_ENV, raising=False)
    root = evaluate_module._PACKAGE_ROOT
    assert default_reference_dir() == root.parent / "shared" / "reference_motion"  # this checkout
    monkeypatch.setenv(REFERENCE_MOTION_ENV, str(tmp_path))
    assert default_reference_dir() == tmp_path
    monkeypatch.delenv(REFERENCE_MOTION_ENV)
    monkeypatch.setattr(evaluate_module, "_PACKAGE_ROOT", tmp_path / "site-packages")  # installed: no pyproject.toml
    assert default_reference_dir() is None


@pytest.mark.parametrize(
    ("folder", "corpus_tasks", "reason"),
    [
        (None, None, "no folder of real recordings: pass reference_dir (biomechgpt evaluate --reference-motion DIR) "
                     "or set $BIOMECHGPT_REFERENCE_MOTION"),
        ("missing", None, "real recordings not found at"),
        ("empty", None, "no recording with a known content"),
        ("readme_only", None, "no recording with a known content"),
        ("recordings", ("cadence",), "no activity or impairment question"),
    ],
)
def test_sim_to_real_check_says_why_it_cannot_run(corpus_and_motions, tmp_path, folder, corpus_tasks, reason):
    corpus = corpus_and_motions[0]
    if corpus_tasks is not None:
        corpus = corpus[corpus.task.isin(corpus_tasks)]
    where = None if folder is None else tmp_path / folder
    if folder in ("empty", "readme_only", "recordings"):
        where.mkdir()
    if folder == "readme_only":
        (where / "README.md").write_text("# recordings\n")
        (where / "unknown.mot").write_text("not one of the documented recordings\n")
    if folder == "recordings":
        (where / "normal.mot").write_text("never read: there is nothing to ask\n")
    model = MotionReadingModel({})
    check = _reference_check(model, None, corpus, where, motion_parse)
    assert set(check) == {"skipped"} and reason in check["skipped"] and "\n" not in check["skipped"]


def test_an_installed_package_says_and_records_that_the_check_was_skipped(corpus_and_motions, tmp_path, monkeypatch,
                                                                          capsys):
    corpus, motions, folder = corpus_and_motions
    monkeypatch.delenv(REFERENCE_MOTION_ENV, raising=False)
    monkeypatch.setattr(evaluate_module, "_PACKAGE_ROOT", tmp_path / "site-packages")
    settings = BaselineSettings(gbt_max_iter=5, cnn_steps=2, cnn_channels=8, cnn_batch_size=8)
    metrics = evaluate_model(FakeModel(corpus), folder, tmp_path / "out", motion_source=motions.__getitem__,
                             parser=fake_parse, baseline_settings=settings, tasks=["activity"], max_rows_per_task=5,
                             write_card=False, progress=False)
    reason = metrics["sim_to_real"]["skipped"]
    assert reason.startswith("no folder of real recordings") and metrics["sim_to_real"] == {"skipped": reason}
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["sim_to_real"] == {"skipped": reason}
    lines = [line for line in capsys.readouterr().err.splitlines() if "sim-to-real" in line]
    assert lines == [f"sim-to-real check skipped: {reason}"]
    assert f"Skipped: {reason}." in (tmp_path / "out" / "report.md").read_text()


def test_a_reference_folder_given_that_does_not_exist_is_a_one_line_error(corpus_and_motions, tmp_path, capsys):
    corpus, motions, folder = corpus_and_motions
    with pytest.raises(UsageError, match=r"reference_dir .*missing: not a folder"):
        evaluate_model(FakeModel(corpus), folder, tmp_path / "out", reference_dir=tmp_path / "missing")
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", "m", "--dataset", str(folder), "--out", str(tmp_path / "out"),
              "--reference-motion", str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1
    assert f"argument --reference-motion: {tmp_path}/missing: not a folder" in err[0]


def _fake_trainer(trained: list):
    """A `train_fn` that writes which tasks and size it was given into the "model" folder and logs its calls."""

    def train_fn(dataset_dir, base_model, out_dir, **kwargs):
        out_dir.mkdir(parents=True)
        tasks = sorted(set(pd.read_parquet(next((dataset_dir / "data").glob("train-*.parquet"))).task))
        (out_dir / "tasks.json").write_text(json.dumps({"tasks": tasks, "size": base_model}))
        trained.append((base_model, tasks, kwargs["max_steps"]))
        return out_dir

    return train_fn


def test_experiments_tables_report_each_trained_models_own_scores(corpus_and_motions, tmp_path):
    """The tables hold what each trained model scores on the same test questions, in its own row. The fake models'
    quality is set against expectation (the smallest model and the per-task models are the best), so a table that
    assumed bigger or jointly trained models do better, or scored one model for another, would show it."""
    corpus, _, folder = corpus_and_motions
    trained = []
    train_fn = _fake_trainer(trained)
    # every n-th activity answer wrong (10**6: none); the all-task `tiny` is shared by both experiments
    wrong_every = {("tiny-s", True): 10**6, ("tiny", True): 3, ("tiny-l", True): 2, ("tiny", False): 10**6}

    def load_fn(model_dir):
        spec = json.loads((model_dir / "tasks.json").read_text())
        return FakeModel(corpus, wrong_every=wrong_every[spec["size"], len(spec["tasks"]) > 1], unparsed_every=10**6)

    settings = ExperimentSettings(max_steps=7, transfer_tasks=("activity", "cadence"), eval_rows_per_task=20)
    results = run_experiments(["transfer", "size"], folder, tmp_path, settings=settings, train_fn=train_fn,
                              load_fn=load_fn, parser=fake_parse, progress=False)
    assert all(steps == 7 for _, _, steps in trained)
    assert sorted(tasks for size, tasks, _ in trained if size == "tiny" and len(tasks) == 1) == [["activity"],
                                                                                                  ["cadence"]]
    # 1 all-task model (shared by both experiments), 2 per-task models, tiny-s and tiny-l
    assert len(trained) == 5 and [size for size, tasks, _ in trained if len(tasks) > 1] == ["tiny", "tiny-s", "tiny-l"]

    # the expected headline metric (macro-F1) of a model with every n-th answer wrong, on the experiments' rows
    from biomechgpt.metrics import compute_task_metrics

    asked = corpus[(corpus.split == "test") & (corpus.task == "activity")].sort_values("id", kind="stable").head(20)
    truth = list(asked.target_label)

    def macro_f1(every: int) -> float:
        flipped = ["running" if label != "running" else "walking" for label in truth]
        predicted = [flipped[k] if (k + 1) % every == 0 else truth[k] for k in range(len(truth))]
        return compute_task_metrics("activity", predicted, truth, [0.9] * len(truth))["macro_f1"]

    joint, single = results["transfer"]["rows"]
    assert joint["metrics"]["activity"] == pytest.approx(macro_f1(3))
    assert single["metrics"]["activity"] == pytest.approx(1.0)
    assert joint["metrics"]["activity"] < single["metrics"]["activity"]
    assert results["transfer"]["summary"].startswith("the all-task model beat the per-task models on 0 of 2 tasks "
                                                     "(none)")
    rows = results["size"]["rows"]
    assert [row["size"] for row in rows] == ["tiny-s", "tiny", "tiny-l"]
    assert [row["metrics"]["activity"] for row in rows] == pytest.approx([1.0, macro_f1(3), macro_f1(2)])
    assert macro_f1(3) != macro_f1(2)  # the three rows are told apart
    cadence = {row["metrics"]["cadence"] for row in rows}  # numbers are equally good in every fake: one score
    assert len(cadence) == 1 and next(iter(cadence)) > 0.99
    # the model card and the report show the tables, not only the summaries
    from biomechgpt.evaluation.model_card import render_model_card

    card = render_model_card({"tasks": {}, "experiments": results, "sim_to_real": {}})
    assert "### Experiments" in card and "#### transfer" in card and "#### size" in card
    assert "| model | training time (s) | Activity recognition | Cadence (steps/min) |" in card
    assert "| tiny-l |" in card
    assert f"In short: {results['size']['summary']}" in card
    with pytest.raises(UsageError, match="unknown experiment"):
        run_experiments(["ablation"], folder, tmp_path)


def test_bad_inputs_are_one_line_errors(tmp_path, capsys, corpus_and_motions):
    _, _, folder = corpus_and_motions
    with pytest.raises(UsageError, match="QA corpus folder not found"):
        evaluate_model(FakeModel(pd.DataFrame()), tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no Parquet shards"):
        evaluate_model(FakeModel(pd.DataFrame()), tmp_path / "empty", tmp_path / "out")
    assert main(["evaluate", "--model", str(tmp_path / "nomodel"), "--dataset", str(folder), "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a model folder" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", "m", "--dataset", "d", "--out", "o", "--experiments", "transfer,ablation"])
    assert exit_info.value.code == 2
    assert "unknown experiment(s) ablation" in capsys.readouterr().err


def test_summary_field_agreement_counts_stated_facts():
    from types import SimpleNamespace

    from biomechgpt.evaluation.evaluate import _summary_field_agreement

    def parser(task, text):  # "activity=walking;cadence=110" -> fields
        fields = dict(part.split("=") for part in text.split(";") if "=" in part)
        return SimpleNamespace(fields={k: float(v) if k == "cadence" else v for k, v in fields.items()})

    rows = pd.DataFrame({
        "reference_answer": ["activity=walking;cadence=100", "activity=running;cadence=160"],
        "answer": ["activity=walking;cadence=108", "activity=walking"],  # 108 within 10% of 100
    })
    result = _summary_field_agreement(rows, parser)
    assert result["field_accuracy"] == pytest.approx((1.0 + 0.0) / 2)
    assert result["per_field_accuracy"] == {"activity": 0.5, "cadence": 0.5}
    assert _summary_field_agreement(rows, lambda t, s: None)["field_accuracy"] is None


def test_experiment_budget_options_reach_the_experiments(monkeypatch, capsys):
    import biomechgpt.evaluation as evaluation

    seen = {}

    def fake_evaluate(*args, **kwargs):
        seen.update(kwargs)
        return {"tasks": {}}

    monkeypatch.setattr(evaluation, "evaluate_model", fake_evaluate)
    assert main(["evaluate", "--model", "m", "--dataset", "d", "--out", "o", "--experiments", "transfer",
                 "--experiment-steps", "2044", "--transfer-tasks", "activity,cadence", "--seed", "3"]) == 0
    settings = seen["experiment_options"]["settings"]
    assert (settings.max_steps, settings.transfer_tasks, settings.seed) == (2044, ("activity", "cadence"), 3)
    assert main(["evaluate", "--model", "m", "--dataset", "d", "--out", "o"]) == 0
    assert seen["experiment_options"] is None
    for bad, message in ((["--experiment-steps", "0"], "must be at least 1"),
                         (["--experiment-steps", "many"], "expected a whole number, got 'many'"),
                         (["--transfer-tasks", "activity,gait"], "unknown task(s) gait")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", "--model", "m", "--dataset", "d", "--out", "o", *bad])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_experiments_reuse_the_main_model_when_it_is_their_all_task_model(corpus_and_motions, tmp_path):
    corpus, _, folder = corpus_and_motions
    trained = []
    train_fn = _fake_trainer(trained)
    main_model = tmp_path / "main"
    main_model.mkdir()
    all_tasks = sorted(set(corpus.task))
    (main_model / "tasks.json").write_text(json.dumps({"tasks": all_tasks, "size": "tiny"}))
    from biomechgpt.evaluation.experiments import _default_motion_arguments

    # trained as the experiments would train it: same steps, batch and motion input (stage-1 encoder and all)
    summary = {"base_model": "tiny", "mode": "full", "seed": 0, "steps": 7, "train_runtime_s": 12.5,
               "arguments": {"batch_size": 8, "gradient_accumulation_steps": 1, **_default_motion_arguments()}}
    settings = ExperimentSettings(max_steps=7, transfer_tasks=("activity",), sizes=("tiny-s", "tiny", "tiny-l"),
                                  eval_rows_per_task=10)
    options = dict(settings=settings, train_fn=train_fn, load_fn=lambda d: FakeModel(corpus), parser=fake_parse,
                   progress=False)
    codes = summary | {"arguments": summary["arguments"] | {"motion_input": "codes"}}
    for steps, reused, trained_as in ((7, True, summary), (8, False, summary), (7, False, codes)):
        (main_model / "training_summary.json").write_text(json.dumps(trained_as | {"steps": steps}))
        trained.clear()
        results = run_experiments(["transfer", "size"], folder, tmp_path / f"x{steps}-{reused}", model_dir=main_model,
                                  **options)
        all_task_tiny = [t for t in trained if t[0] == "tiny" and len(t[1]) > 1]
        assert all_task_tiny == ([] if reused else [("tiny", all_tasks, 7)])
        assert (results["transfer"]["rows"][0]["train_s"] == 12.5) is reused


def _normalised(text: str) -> str:
    return " ".join(text.lower().replace("?", "").replace(".", "").split())


def test_heldout_wordings_cover_every_task_and_are_not_training_or_routing_wordings():
    from pathlib import Path

    from biomechgpt.dataset_builder.templates import QUESTIONS

    wordings = heldout_questions()
    assert set(wordings) == set(QUESTIONS) - {"summary"}
    assert all(len(qs) >= 3 for qs in wordings.values())
    seen = {_normalised(t.text) for templates in QUESTIONS.values() for t in templates}
    data = Path(__file__).parent / "data"
    for name in ("routing_questions.tsv", "routing_questions_unseen.tsv"):
        for line in (data / name).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                seen.add(_normalised(line.split("\t", 1)[1]))
    overlap = [q for qs in wordings.values() for q in qs if _normalised(q) in seen]
    assert not overlap


def test_heldout_wordings_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "q.tsv"
    bad.write_text("# fine\nactivity\tWhat is this?\nno_such_task\tWhy?\n")
    with pytest.raises(ValueError, match=r"q.tsv, line 3: expected"):
        heldout_questions(bad)


def test_wording_check_measures_how_answers_move_with_the_wording(corpus_and_motions):
    """A model whose activity answer follows the wording for one held-out wording: the check sees the changed
    answers and the lost accuracy, and scores the training wording on the same trials."""
    corpus = corpus_and_motions[0]
    test = corpus[corpus.split == "test"].sort_values("id")
    test = test[test.task.isin(["activity", "cadence"])]
    swayed = heldout_questions()["activity"][1]

    truth = {(tuple(int(c) for c in r.motion_codes), r.task): r for r in test.itertuples()}

    class WordingModel:
        def answer_batch(self, motions, questions, **kwargs):
            out = []
            for codes, question in zip(motions, questions):
                task = "cadence" if "step" in question.lower() or "cadence" in question.lower() else "activity"
                row = truth[(tuple(int(c) for c in codes), task)]
                if task == "activity":
                    label = "running" if question == swayed else row.target_label
                    out.append({"answer": f"This is {label.replace('_', ' ')}.", "task": task})
                else:
                    out.append({"answer": f"About {row.target_value:.1f} steps.", "task": task})
            return out

    predictions = predictions_frame(
        test.reset_index(drop=True), WordingModel().answer_batch([list(c) for c in test.motion_codes],
                                                                 list(test.question)), fake_parse)
    check = _wording_check(WordingModel(), test, predictions, None, fake_parse, n_trials=4)
    activity = check["tasks"]["activity"]
    assert set(check["overall"]) == {"model"}  # no router on this model: only the direct way
    assert activity["n_trials"] == 4 and activity["wordings"] == len(heldout_questions()["activity"])
    truth = test[test.task == "activity"].drop_duplicates("trial_id").head(4).target_label
    assert activity["training_wording"]["accuracy"] == 1.0
    walking_share = float(np.mean(truth != "running"))
    assert activity["model"]["unchanged"] == pytest.approx(1 - walking_share)  # only running trials stay the same
    assert activity["model"]["accuracy"] == pytest.approx(1 - walking_share / activity["wordings"])
    cadence = check["tasks"]["cadence"]
    held = [q for q in heldout_questions()["cadence"] if "step" in q.lower() or "cadence" in q.lower()]
    assert cadence["model"]["unchanged"] == (1.0 if len(held) == cadence["wordings"] else 0.0)
    assert check["overall"]["model"]["accuracy_change"] == pytest.approx(activity["model"]["accuracy"] - 1.0)
