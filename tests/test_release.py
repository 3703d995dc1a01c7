"""Release folders: what they hold, that they load with and without the package and give the same answers, that the
dataset loads, that pickles and cards without results are refused, and uploads through a fake Hub (never the
network)."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import torch

import biomechgpt  # noqa: F401  (registers the Auto classes)
from biomechgpt.cli import main
from biomechgpt.release import (
    ANSWER_ATOL,
    ANSWER_RTOL,
    Release,
    ReleaseError,
    list_files,
    prepare_release,
    upload_release,
)
from biomechgpt.release.validation import _compare_answers
from test_train_helpers import make_corpus, make_motion_tokenizer, make_tiny_model_and_processor

METRICS = {"tasks": {
    "activity": {"n": 12, "biomechgpt": {"accuracy": 0.75, "macro_f1": 0.7}, "baseline": {"accuracy": 0.5}},
    "cadence": {"n": 12, "biomechgpt": {"pearson_r": 0.6, "mae": 4.2}, "baseline": {"mae": 6.0}},
}}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to reach the network: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _model_folder(root: Path) -> Path:
    """A run folder in the `biomechgpt run` layout: model/ (model, processor, MotionTokenizer) and metrics.json."""
    model, processor = make_tiny_model_and_processor()
    processor.motion_tokenizer = make_motion_tokenizer()
    folder = root / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (root / "metrics.json").write_text(json.dumps(METRICS))
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    model = _model_folder(root)
    # what a training run leaves besides the release files: never uploaded
    (model / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (model / "checkpoints" / "checkpoint-2" / "optimizer.pt").write_bytes(b"pickle")
    (model / "notes.txt").write_text("local notes")
    make_corpus(root / "dataset")
    return root


@pytest.fixture(scope="module")
def release(run_dir, tmp_path_factory) -> Release:
    """One full release with every check, the remote-code load in a fresh interpreter included (the slow part)."""
    return prepare_release(run_dir / "model", tmp_path_factory.mktemp("stage") / "release", repo_id="lab/bgpt",
                           dataset_dir=run_dir / "dataset", dataset_repo_id="lab/bgpt-qa")


def test_model_folder_holds_exactly_the_release_files(release):
    folder = release.folder("model").path
    names = {name for name, _ in list_files(folder)}
    expected = {"README.md", "config.json", "generation_config.json", "model.safetensors", "processor_config.json",
                "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "configuration_biomechgpt.py",
                "modeling_biomechgpt.py", "answering_biomechgpt.py", "modeling_motion_encoder.py",
                "processing_biomechgpt.py",
                "tokenization_motion.py", "configuration_motion_tokenizer.py", "modeling_motion_tokenizer.py",
                "feature_extraction_motion.py", "motion.py", "motion_descriptors.py", "motion_tokenizer/config.json",
                "motion_tokenizer/model.safetensors", "motion_tokenizer/preprocessor_config.json"}
    assert names == expected
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_biomechgpt.BiomechGPTForCausalLM"
    processor_config = json.loads((folder / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_biomechgpt.BiomechGPTProcessor"


def test_model_card_has_results_and_both_ways_to_load(release):
    from huggingface_hub import ModelCard

    card = ModelCard.load(release.folder("model").path / "README.md")
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results["Activity recognition accuracy"] == 0.75 and results["Cadence (steps/min) mae"] == 4.2
    assert card.data.datasets == ["lab/bgpt-qa"]
    assert 'from_pretrained("lab/bgpt")' in card.text and 'from_pretrained("lab/bgpt", trust_remote_code=True)' in \
        card.text


def test_same_answers_with_and_without_the_package(release):
    check = release.checks["model"]
    local, remote = check["answers"], check["remote_answers"]
    assert remote["model_module"].startswith("transformers_modules")
    assert remote["processor_module"].startswith("transformers_modules")
    assert local["codes"] == remote["codes"] and len(local["codes"]) == 30  # 120 frames, one code per 4
    assert [a["task"] for a in local["answers"]] == ["activity", "cadence", "summary"]
    for mine, theirs in zip(local["answers"], remote["answers"], strict=True):
        for key in ("question", "task", "label", "unit"):
            assert mine[key] == theirs[key], key
        for key in ("confidence", "value", "spread"):
            assert (mine[key] is None) == (theirs[key] is None), key
            if mine[key] is not None:
                assert theirs[key] == pytest.approx(mine[key], rel=ANSWER_RTOL, abs=ANSWER_ATOL), key
    # both loads scored the package's answer texts: the same probabilities, not just similar-looking text
    assert len(local["log_likelihoods"]) == len(remote["log_likelihoods"]) == 3
    for ours, theirs in zip(local["log_likelihoods"], remote["log_likelihoods"], strict=True):
        assert ours < 0 and theirs == pytest.approx(ours, rel=ANSWER_RTOL, abs=ANSWER_ATOL)
    assert local["answers"][0]["label"] in ("walking", "running") and local["answers"][0]["confidence"] > 0


ANSWERS = {"codes": [1, 2], "log_likelihoods": [-1.25, -40.0, -12.0], "answers": [
    {"question": "What is the person doing?", "task": "activity", "answer": "Walking.", "label": "walking",
     "value": None, "unit": None, "confidence": 0.6, "spread": None},
    {"question": "Describe the movement.", "task": "walking_speed", "answer": "A steady walk at 1.2 m/s.",
     "label": None, "value": 1.2, "unit": "m/s", "confidence": None, "spread": 0.3},
    {"question": "Summarise it.", "task": "summary", "answer": "Walking, no falls.", "label": "fall_history=no",
     "value": None, "unit": None, "confidence": None, "spread": None},
]}


class _Tasks:
    """What `_compare_answers` reads of a processor: activity ranked, walking speed graded, the summary generated."""

    task_kinds = {"activity": "closed", "walking_speed": "numeric", "summary": "free"}
    numeric_answers = {"walking_speed": [{"template": "{value} m/s"}]}


def _changed(row: int, field: str, value) -> dict:
    other = json.loads(json.dumps(ANSWERS))
    if field == "log_likelihoods":
        other["log_likelihoods"][row] = value
    else:
        other["answers"][row][field] = value
    return other


@pytest.mark.parametrize("row, field, value", [
    (0, "confidence", 0.6 + 9e-4),  # float noise of another thread count
    (1, "value", 1.2 * (1 + 9e-4)),
    (1, "spread", 0.3 - 9e-4),
    (1, "log_likelihoods", -40.0 * (1 + 9e-4) - 9e-4),
    (1, "answer", "A steady walk at 1.2 m/s, even."),  # regenerated text may differ: its likelihood is compared
    # a generated answer's label is read from its text by the corpus's parser, which only the package has
    (2, "label", None),
])
def test_answer_comparison_tolerates_float_noise(tmp_path, row, field, value):
    _compare_answers(tmp_path, ANSWERS, _changed(row, field, value), _Tasks())


@pytest.mark.parametrize("row, field, value, message", [
    (0, "label", "running", "'What is the person doing?': label is 'walking' with the package but 'running' as "
                            "remote code"),
    (0, "task", "impairment", "task is 'activity' with the package but 'impairment' as remote code"),
    (1, "unit", "km/h", "'Describe the movement.': unit is 'm/s' with the package but 'km/h' as remote code"),
    (0, "confidence", 0.61, "confidence is 0.6 with the package but 0.61 as remote code (tolerance 0.001 + 0.001 x "
                            "|value|)"),
    (0, "confidence", None, "confidence is 0.6 with the package but None as remote code"),
    (1, "value", 1.21, "'Describe the movement.': value is 1.2 with the package but 1.21 as remote code"),
    (1, "spread", 0.35, "spread is 0.3 with the package but 0.35 as remote code"),
    (1, "log_likelihoods", -40.5, "'Describe the movement.': the log-likelihood of the answer 'A steady walk at 1.2 "
                                  "m/s.' is -40.0 with the package but -40.5 as remote code"),
    (2, "task", None, "'Summarise it.': task is 'summary' with the package but None as remote code"),
    (2, "log_likelihoods", -13.0, "the log-likelihood of the answer 'Walking, no falls.' is -12.0"),
])
def test_answer_comparison_names_the_question_field_and_both_values(tmp_path, row, field, value, message):
    with pytest.raises(ReleaseError) as error:
        _compare_answers(tmp_path, ANSWERS, _changed(row, field, value), _Tasks())
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1


def test_answer_comparison_requires_the_same_codes(tmp_path):
    with pytest.raises(ReleaseError, match="different codes"):
        _compare_answers(tmp_path, ANSWERS, dict(ANSWERS, codes=[1, 3]), _Tasks())


def test_dataset_folder_loads_with_load_dataset(release, run_dir):
    import datasets
    import pandas as pd

    folder = release.folder("dataset").path
    assert {name for name, _ in list_files(folder)} == {"README.md", "data/train-00000.parquet",
                                                        "data/validation-00000.parquet"}
    assert release.folder("dataset").repo_type == "dataset"
    loaded = datasets.load_dataset(str(folder), cache_dir=str(folder.parent / "cache"))
    source = pd.read_parquet(run_dir / "dataset" / "data" / "train-00000.parquet")
    assert release.checks["dataset"]["splits"] == {"train": len(source), "validation": len(source) // 3}
    assert loaded["train"]["question"] == source["question"].tolist()


@pytest.mark.parametrize("name", ["pytorch_model.bin", "motion_tokenizer/weights.pt", "state.pkl"])
def test_pickle_files_are_refused(run_dir, tmp_path, name):
    model = tmp_path / "model"
    shutil.copytree(run_dir / "model", model)
    (model / name).write_bytes(b"\x80\x04pickle")
    with pytest.raises(ReleaseError, match=f"{name} is a pickle-format file; releases are safetensors only"):
        prepare_release(model, tmp_path / "stage", repo_id="lab/bgpt", validate=False)


def test_a_card_without_results_is_refused(tmp_path):
    model = _model_folder(tmp_path)
    (tmp_path / "metrics.json").unlink()
    with pytest.raises(ReleaseError, match="no evaluation results for the model card"):
        prepare_release(model, tmp_path / "stage", repo_id="lab/bgpt", validate=False)
    # a card written by `biomechgpt evaluate` into the model folder is used instead, with the repository filled in
    from biomechgpt.evaluation.model_card import write_model_card

    write_model_card(METRICS, model / "README.md")
    staged = prepare_release(model, tmp_path / "stage2", repo_id="lab/bgpt", validate=False).folder("model").path
    assert 'from_pretrained("lab/bgpt")' in (staged / "README.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--repo-id", "no-owner"], "--repo-id 'no-owner': expected ORG/NAME"),
    (["--dataset", "DATASET"], "--dataset needs --dataset-repo-id"),
    (["--model", "/nonexistent"], "--model /nonexistent: folder not found"),
    (["--adapter"], "--adapter needs a LoRA or QLoRA run"),
    (["--base-repo-id", "lab/b"], "--base-repo-id: only with --adapter"),
])
def test_push_bad_input_is_one_line(run_dir, tmp_path, capsys, argv, message):
    args = {"--model": str(run_dir / "model"), "--repo-id": "lab/bgpt"}
    rest = []
    for flag, value in zip(argv[::2], argv[1::2] + [None]):
        if flag in args:
            args[flag] = value
        else:
            rest += [flag] + ([value.replace("DATASET", str(run_dir / "dataset"))] if value else [])
    argv_full = ["push", *[x for kv in args.items() for x in kv], *rest, "--dry-run", "--staging", str(tmp_path / "s")]
    assert main(argv_full) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_dry_run_prints_the_file_list_with_sizes(run_dir, tmp_path, capsys):
    staging = tmp_path / "staging"
    status = main(["push", "--model", str(run_dir / "model"), "--repo-id", "lab/bgpt", "--dataset",
                   str(run_dir / "dataset"), "--dataset-repo-id", "lab/bgpt-qa", "--dry-run", "--staging",
                   str(staging), "--skip-remote-check"])
    out = capsys.readouterr().out
    assert status == 0 and "nothing uploaded" in out
    for kind in ("model", "dataset"):
        for name, size in list_files(staging / kind):
            assert f"{size:>12,d}  {name}" in out
    assert ("check model: loads with the package; 3 questions answered; remote-code check skipped "
            "(--skip-remote-check); model card has 4 results") in out
    assert "check dataset: loads with datasets.load_dataset (train 72, validation 24 rows)" in out


# ---------------------------------------------------------------------------------------------------------------------
# uploads through a fake Hub


class FakeHub:
    """Records what would be sent to the Hub; `fail` makes every call raise that exception."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple] = []
        self.files: dict[str, dict[str, bytes]] = {}
        self.fail = fail

    def api(self, token=None, **kwargs):
        hub = self

        class Api:
            def create_repo(self, repo_id, repo_type=None, private=None, exist_ok=False, **kw):
                hub._call("create_repo", repo_id, repo_type, private)
                return type("RepoUrl", (), {"repo_id": repo_id})()

            def create_branch(self, repo_id, branch, repo_type=None, exist_ok=False, **kw):
                hub._call("create_branch", repo_id, branch)

            def upload_folder(self, repo_id, folder_path, repo_type=None, revision=None, **kw):
                hub._call("upload_folder", repo_id, repo_type, revision)
                store = hub.files.setdefault(repo_id, {})
                for name, _ in list_files(folder_path):
                    store[name] = (Path(folder_path) / name).read_bytes()
                return type("CommitInfo", (), {"commit_url": f"https://hub.test/{repo_id}/commit/1"})()

            def create_commit(self, repo_id, operations, revision=None, **kw):
                hub._call("create_commit", repo_id, revision)
                store = hub.files.setdefault(repo_id, {})
                for op in operations:
                    store[op.path_in_repo] = Path(op.path_or_fileobj).read_bytes()
                return f"https://hub.test/{repo_id}/commit/1"

        return Api()

    def _call(self, *call):
        if self.fail is not None:
            raise self.fail
        self.calls.append(call)

    def materialise(self, repo_id: str, folder: Path) -> Path:
        for name, data in self.files[repo_id].items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return folder


@pytest.fixture
def hub(monkeypatch, tmp_path):
    import huggingface_hub
    import transformers.utils.hub as transformers_hub
    from huggingface_hub import ModelCard, constants

    fake = FakeHub()
    monkeypatch.setattr(huggingface_hub, "HfApi", fake.api)
    monkeypatch.setattr(transformers_hub, "hf_api", fake.api)
    # push_to_hub reads the remote card first; a fresh repository has none
    monkeypatch.setattr(transformers_hub, "create_and_tag_model_card",
                        lambda repo_id, tags=None, token=None: ModelCard("---\nlibrary_name: transformers\n---\n"))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return fake


def test_upload_sends_every_staged_file(release, hub):
    urls = upload_release(release, private=True, revision="v0.1")
    assert urls == ["https://hub.test/lab/bgpt/commit/1", "https://hub.test/lab/bgpt-qa/commit/1"]
    assert ("create_repo", "lab/bgpt", "model", True) in hub.calls
    assert ("create_repo", "lab/bgpt-qa", "dataset", True) in hub.calls
    assert ("create_branch", "lab/bgpt", "v0.1") in hub.calls
    assert ("upload_folder", "lab/bgpt-qa", "dataset", "v0.1") in hub.calls
    # every repository exists before the first upload
    assert [c[0] for c in hub.calls].index("upload_folder") > max(
        i for i, c in enumerate(hub.calls) if c[0] == "create_repo")
    for kind, repo in (("model", "lab/bgpt"), ("dataset", "lab/bgpt-qa")):
        folder = release.folder(kind).path
        assert hub.files[repo] == {name: (folder / name).read_bytes() for name, _ in list_files(folder)}


def test_model_processor_and_motion_tokenizer_push_to_hub(hub, tmp_path):
    from transformers import AutoModelForCausalLM, AutoProcessor

    from biomechgpt import MotionTokenizer

    model, processor = make_tiny_model_and_processor()
    processor.motion_tokenizer = make_motion_tokenizer()
    model.push_to_hub("lab/pushed")
    processor.push_to_hub("lab/pushed")
    processor.motion_tokenizer.push_to_hub("lab/motion-tokenizer")
    uploaded = set(hub.files["lab/pushed"])
    assert {"config.json", "model.safetensors", "modeling_biomechgpt.py", "configuration_biomechgpt.py",
            "processor_config.json", "tokenizer.json", "processing_biomechgpt.py",
            "motion_tokenizer/model.safetensors"} <= uploaded
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in uploaded)
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= set(hub.files["lab/motion-tokenizer"])
    # what was uploaded loads back: same weights, same processor, same MotionTokenizer
    folder = hub.materialise("lab/pushed", tmp_path / "pushed")
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, atol=0, rtol=0)
    loaded_processor = AutoProcessor.from_pretrained(folder)
    assert loaded_processor.task_kinds == processor.task_kinds and loaded_processor.motion_tokenizer is not None
    tokenizer = MotionTokenizer.from_pretrained(hub.materialise("lab/motion-tokenizer", tmp_path / "mt"))
    assert tokenizer.codebook_size == processor.motion_tokenizer.codebook_size


def _push(run_dir, tmp_path, *extra):
    return main(["push", "--model", str(run_dir / "model"), "--repo-id", "lab/bgpt", "--skip-remote-check",
                 "--staging", str(tmp_path / "staging"), *extra])


def test_push_uploads_through_the_cli(run_dir, tmp_path, hub, capsys):
    assert _push(run_dir, tmp_path, "--private") == 0
    assert "pushed model to model lab/bgpt: https://hub.test/lab/bgpt/commit/1" in capsys.readouterr().out
    assert ("create_repo", "lab/bgpt", "model", True) in hub.calls and "model.safetensors" in hub.files["lab/bgpt"]


@pytest.mark.parametrize("situation, message", [
    ("no token", "no Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was uploaded)"),
    ("offline", "HF_HUB_OFFLINE is set: the Hub cannot be reached"),
    ("connection error", "could not create the repositories on the Hub (ConnectionError: Connection refused)"),
])
def test_push_without_token_or_network_fails_in_one_line(run_dir, tmp_path, hub, monkeypatch, capsys, situation,
                                                         message):
    from huggingface_hub import constants

    if situation == "no token":
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    elif situation == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        hub.fail = ConnectionError("Connection refused")
    assert _push(run_dir, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert hub.files == {} and not [c for c in hub.calls if c[0] != "create_repo"]


@pytest.mark.slow
def test_push_dry_run_validates_a_pipeline_run(quick_run, capsys):
    """The release check on what `biomechgpt run` produced (not a hand-made tiny model): the remote-code load in a
    fresh single-threaded interpreter must agree with the package's within the stated tolerance."""
    run = quick_run.run
    status = main(["push", "--model", str(run / "model"), "--repo-id", "lab/bgpt-quick", "--dataset",
                   str(run / "dataset"), "--dataset-repo-id", "lab/bgpt-quick-qa", "--dry-run"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "check model: loads with and without the package;" in captured.out
    assert "questions answered alike (task, label and unit equal;" in captured.out
    assert "dry run: validated, nothing uploaded" in captured.out
