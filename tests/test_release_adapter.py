"""LoRA / QLoRA runs released as the PEFT adapter training saved, on top of their base, or merged: both load with
`from_pretrained` and answer like the trained model (tiny local base model, nothing downloaded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import biomechgpt  # noqa: F401  (registers the Auto classes)
from biomechgpt.release import ReleaseError, list_files, prepare_release
from biomechgpt.training.train_lm import train_model
from test_release import METRICS
from test_train_helpers import make_corpus, make_hub_llama, make_motion_tokenizer

QUICK = dict(motion_input="codes", batch_size=4, progress=False, tokenizer_vocab_size=300, logging_steps=1,
             max_steps=3, learning_rate=1e-2)
IDS = [[5, 6, 7, 8, 9]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    make_motion_tokenizer().save_pretrained(root / "tokenizer")
    return make_corpus(root / "corpus"), make_hub_llama(root / "hub_llama"), root / "tokenizer"


def _train(inputs, root: Path, mode: str) -> Path:
    corpus, base, tokenizer = inputs
    out = train_model(corpus, str(base), root / "model", motion_tokenizer=str(tokenizer), mode=mode, **QUICK)
    (root / "metrics.json").write_text(json.dumps(METRICS))
    return out


@pytest.fixture(scope="module", params=["lora", "qlora"])
def adapter_release(request, inputs, tmp_path_factory):
    """A short run of each mode released as an adapter; the remote-code load runs once (for LoRA)."""
    root = tmp_path_factory.mktemp(request.param)
    model = _train(inputs, root, request.param)
    release = prepare_release(model, root / "stage", repo_id=f"lab/bgpt-{request.param}", adapter=True,
                              remote_code=request.param == "lora")
    return model, release


def _with_local_base(adapter: Path, base: Path, dest: Path) -> Path:
    """The adapter as a user sees it once both repositories are downloaded: its base named by path."""
    shutil.copytree(adapter, dest)
    config = json.loads((dest / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base)
    (dest / "adapter_config.json").write_text(json.dumps(config))
    return dest


def _logits(model, ids=None) -> torch.Tensor:
    ids = torch.tensor(ids or IDS)
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_adapter_and_base_folders(adapter_release):
    model, release = adapter_release
    adapter, base = release.folder("adapter"), release.folder("base")
    mode = json.loads((model / "training_summary.json").read_text())["mode"]
    assert (adapter.repo_id, base.repo_id) == (f"lab/bgpt-{mode}", f"lab/bgpt-{mode}-base")
    assert [f.kind for f in release.folders] == ["base", "adapter"]  # the base is uploaded first
    names = {name for name, _ in list_files(adapter.path)}
    # no config.json / weights: from_pretrained must fetch the base the adapter names
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "processor_config.json",
            "motion_tokenizer/model.safetensors"} <= names and not {"config.json", "model.safetensors"} & names
    config = json.loads((adapter.path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == base.repo_id and config["r"] == 16
    motion = json.loads((model / "config.json").read_text())
    assert config["trainable_token_indices"]["embed_tokens"][-1] == motion["motion_token_offset"] + 15
    assert json.loads((base.path / "config.json").read_text())["auto_map"]["AutoModelForCausalLM"]
    assert "PEFT adapter" in (adapter.path / "README.md").read_text()
    # the adapter as trained (MODEL/adapter), not one rebuilt from the merged weights
    assert (adapter.path / "adapter_model.safetensors").read_bytes() == (
        model / "adapter" / "adapter_model.safetensors").read_bytes()
    # far smaller than the model it reproduces
    size = sum(s for _, s in list_files(adapter.path) if _.startswith("adapter_model"))
    assert size < 0.6 * (model / "model.safetensors").stat().st_size


def test_base_plus_adapter_reproduce_the_trained_model(adapter_release):
    model, release = adapter_release
    check = release.checks["adapter"]
    assert check["max_weight_difference"] < 1e-5
    local = check["answers"]
    assert {a["task"] for a in local["answers"]} == {"activity", "cadence", "summary"}
    if json.loads((model / "training_summary.json").read_text())["mode"] == "qlora":
        assert "remote_answers" not in check  # the fixture asks for the remote-code load for LoRA only (it is slow)
        return
    remote = check["remote_answers"]  # LoRA: the base as remote code plus the adapter, without the package
    assert remote["model_module"].startswith("transformers_modules")
    assert remote["codes"] == local["codes"]
    for mine, theirs in zip(local["answers"], remote["answers"], strict=True):
        assert (mine["task"], mine["label"], mine["unit"]) == (theirs["task"], theirs["label"], theirs["unit"])


def test_adapter_loads_with_from_pretrained(adapter_release, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    model, release = adapter_release
    adapter = _with_local_base(release.folder("adapter").path, release.folder("base").path, tmp_path / "adapter")
    trained = _logits(AutoModelForCausalLM.from_pretrained(model))
    loaded = AutoModelForCausalLM.from_pretrained(adapter)  # base fetched from adapter_config.json, adapter applied
    assert type(loaded).__name__ == "BiomechGPTForCausalLM"
    torch.testing.assert_close(_logits(loaded), trained, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(_logits(AutoPeftModelForCausalLM.from_pretrained(adapter)), trained, atol=1e-4,
                               rtol=1e-4)
    # the base alone is the untrained model: the adapter matters
    assert not torch.allclose(_logits(AutoModelForCausalLM.from_pretrained(release.folder("base").path)), trained,
                              atol=1e-3)


def test_the_same_run_released_merged(adapter_release, tmp_path):
    from transformers import AutoModelForCausalLM

    model, _ = adapter_release
    release = prepare_release(model, tmp_path / "stage", repo_id="lab/bgpt-merged", remote_code=False)
    folder = release.folder("model").path
    assert not (folder / "adapter_config.json").exists()
    assert release.checks["model"]["answers"]["answers"]
    torch.testing.assert_close(_logits(AutoModelForCausalLM.from_pretrained(folder)),
                               _logits(AutoModelForCausalLM.from_pretrained(model)), atol=0, rtol=0)


def test_adapter_of_a_full_run_is_refused(inputs, tmp_path):
    corpus, _, tokenizer = inputs
    model = train_model(corpus, "tiny-s", tmp_path / "model", motion_tokenizer=str(tokenizer), max_steps=1,
                        batch_size=4, progress=False, tokenizer_vocab_size=300, motion_input="codes")
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    with pytest.raises(ReleaseError, match="--adapter needs a LoRA or QLoRA run .* mode is 'full'"):
        prepare_release(model, tmp_path / "stage", repo_id="lab/bgpt", adapter=True)


def test_adapter_of_a_lora_run_without_its_saved_adapter_is_refused(adapter_release, tmp_path, capsys):
    from biomechgpt.cli import main

    model, _ = adapter_release
    copy = tmp_path / "model"
    shutil.copytree(model, copy, ignore=shutil.ignore_patterns("adapter"))
    with pytest.raises(ReleaseError, match=r"no adapter saved by training .*adapter lacks adapter_config.json, "
                                           r"adapter_model.safetensors\); retrain .* or release it merged"):
        prepare_release(copy, tmp_path / "stage", repo_id="lab/bgpt", adapter=True, metrics=METRICS)
    assert not any((tmp_path / "stage").iterdir())  # refused before anything was built
    # the command says it in one line
    assert main(["push", "--model", str(copy), "--repo-id", "lab/bgpt", "--adapter", "--dry-run",
                 "--staging", str(tmp_path / "stage2")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no adapter saved by training" in err


def test_adapter_of_a_model_not_trained_with_that_adapter_is_refused(adapter_release, tmp_path):
    from safetensors.torch import load_file, save_file

    model, _ = adapter_release
    tampered = tmp_path / "model"
    shutil.copytree(model, tampered)
    weights = load_file(str(tampered / "model.safetensors"))
    norm = "language_model.model.norm.weight"
    weights[norm] = weights[norm] + 0.5
    save_file(weights, str(tampered / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ReleaseError, match=r"base \+ adapter differ from the merged model by 5.00e-01 "
                                           r"\(language_model.model.norm.weight\)"):
        prepare_release(tampered, tmp_path / "stage", repo_id="lab/bgpt", adapter=True, metrics=METRICS,
                        remote_code=False)


def test_adapter_release_of_a_bfloat16_base_that_reads_motion(tmp_path):
    """The GPU recipe's case: a QLoRA run of a model that reads the motion frames (its stage-1 motion encoder is not
    in the adapter: the base carries it) from a base stored in bfloat16 (the merged weights are saved in bfloat16).
    Base + adapter reproduce the merged model within bfloat16 rounding and answer alike, also as remote code."""
    from transformers import AutoModelForCausalLM

    from biomechgpt.cli import main
    from biomechgpt.processing.configuration_motion_tokenizer import MotionTokenizerConfig
    from biomechgpt.processing.modeling_motion_tokenizer import MotionTokenizerModel
    from biomechgpt.processing.tokenization_motion import MotionTokenizer
    from biomechgpt.simulation import simulate_cohort

    simulate_cohort(tmp_path / "cohort", n_participants=4, seed=1, workers=1)
    torch.manual_seed(0)
    config = MotionTokenizerConfig(hidden_size=16, num_residual_blocks=1, codebook_size=16, codebook_dim=8)
    MotionTokenizer(MotionTokenizerModel(config)).save_pretrained(tmp_path / "tokenizer")
    assert main(["build-dataset", "--cohort", str(tmp_path / "cohort"), "--tokenizer", str(tmp_path / "tokenizer"),
                 "--out", str(tmp_path / "dataset")]) == 0
    base = make_hub_llama(tmp_path / "base")
    AutoModelForCausalLM.from_pretrained(base).to(torch.bfloat16).save_pretrained(base)
    model = train_model(tmp_path / "dataset", str(base), tmp_path / "model", mode="qlora", max_steps=2,
                        encoder_epochs=1, alignment_epochs=0, progress=False, learning_rate=1e-2, batch_size=4)
    assert json.loads((model / "config.json").read_text())["motion_input"] == "continuous"
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    release = prepare_release(model, tmp_path / "stage", repo_id="lab/bgpt", adapter=True)
    check = release.checks["adapter"]
    assert check["max_weight_difference"] == 0.0  # within two bfloat16 units in the last place
    from safetensors.torch import load_file

    staged = load_file(str(release.folder("base").path / "model.safetensors"))
    trained = load_file(str(model / "model.safetensors"))
    assert {t.dtype for t in staged.values() if t.is_floating_point()} == {torch.bfloat16}
    encoder = [name for name in trained if name.startswith("motion_encoder.")]
    assert encoder and all(torch.equal(staged[name], trained[name]) for name in encoder)  # the stage-1 encoder
    assert check["remote_answers"]["model_module"].startswith("transformers_modules")


def test_adapter_release_of_a_tied_embedding_base(inputs, tmp_path):
    """SmolLM2, Gemma, small Qwen and Llama 3.2 tie their input and output embeddings: the motion rows the adapter
    trains are output rows too. Base + adapter reproduce the merged model exactly, logits included."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    corpus, untied, tokenizer = inputs
    source = LlamaForCausalLM.from_pretrained(untied)
    source.config.tie_word_embeddings = True
    tied = LlamaForCausalLM(source.config)
    tied.load_state_dict({k: v for k, v in source.state_dict().items() if k != "lm_head.weight"}, strict=False)
    tied.tie_weights()
    tied.save_pretrained(tmp_path / "base")
    AutoTokenizer.from_pretrained(untied).save_pretrained(tmp_path / "base")
    model = train_model(corpus, str(tmp_path / "base"), tmp_path / "model", motion_tokenizer=str(tokenizer),
                        mode="lora", **QUICK)
    assert json.loads((model / "config.json").read_text())["tie_word_embeddings"]
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    release = prepare_release(model, tmp_path / "stage", repo_id="lab/bgpt", adapter=True, remote_code=False)
    assert release.checks["adapter"]["max_weight_difference"] == 0.0
    adapter = _with_local_base(release.folder("adapter").path, release.folder("base").path, tmp_path / "adapter")
    offset = json.loads((model / "config.json").read_text())["motion_token_offset"]
    ids = [[5, 6, offset, offset + 3, 7]]  # text and motion tokens
    torch.testing.assert_close(_logits(AutoModelForCausalLM.from_pretrained(adapter), ids),
                               _logits(AutoModelForCausalLM.from_pretrained(model), ids), atol=1e-5, rtol=1e-5)
