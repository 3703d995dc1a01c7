"""Fine-tuning: full / LoRA / QLoRA reduce the loss and save a loadable model; determinism; resume; two gloo
processes under `accelerate launch`; the `train` command."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import biomechgpt  # noqa: F401  (registers the Auto classes)
from biomechgpt.cli import main
from biomechgpt.dataset_builder.corpus import load_corpus
from biomechgpt.training.train_lm import corpus_task_metadata, train_model
from test_train_helpers import CODEBOOK, make_corpus, make_hub_llama, make_motion_tokenizer

QUICK = dict(motion_input="codes", batch_size=4, progress=False, tokenizer_vocab_size=300, logging_steps=1)
WALK, RUN = [1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5], [9, 10, 11, 12, 13, 14, 15, 9, 10, 11, 12, 13]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"), n_trials=32)


@pytest.fixture(scope="module")
def hub_llama(tmp_path_factory):
    return make_hub_llama(tmp_path_factory.mktemp("hub_llama"))


def _summary(folder: Path) -> dict:
    return json.loads((folder / "training_summary.json").read_text())


def test_task_metadata_is_learned_from_the_corpus(corpus):
    meta = corpus_task_metadata(load_corpus(corpus, "train"))
    assert meta["task_kinds"] == {"activity": "closed", "cadence": "numeric", "summary": "free"}
    # the shortest frequent wording of each label, and its share among that label's answers
    assert meta["answer_candidates"]["activity"] == {"running": "Running.", "walking": "Walking."}
    assert meta["answer_log_priors"]["activity"]["walking"] == pytest.approx(-0.6931, abs=1e-3)
    assert meta["task_units"] == {"cadence": "steps/min"}
    assert "What is the cadence?" in meta["task_questions"]["cadence"]


def test_full_training_from_scratch_learns_the_corpus(corpus, tmp_path):
    from transformers import AutoModelForCausalLM

    out = train_model(corpus, "tiny-s", tmp_path / "model", codebook_size=CODEBOOK, epochs=8, **QUICK)
    summary = _summary(out)
    assert summary["mode"] == "full" and summary["final_loss"] < 0.2 * summary["first_loss"]
    assert not (out / "checkpoints").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    walk = model.answer(WALK, ["What activity is the person performing?", "What is the cadence?"])
    run = model.answer(RUN, "Name the activity in this trial.")
    assert (walk[0].label, run.label) == ("walking", "running")
    assert walk[0].confidence > 0.5 and run.confidence > 0.5
    # the mean over the grid 100..160 the corpus spans: near 100, and the model is sure of it
    assert walk[1].task == "cadence" and walk[1].value == pytest.approx(100.0, abs=5) and walk[1].unit == "steps/min"
    assert walk[1].spread < 15  # a uniform belief over the grid would give 17.6
    assert model.processor.numeric_answers["cadence"][0]["template"] == "The cadence is about {} steps/min."


def test_same_seed_same_weights(corpus, tmp_path):
    runs = [train_model(corpus, "tiny-s", tmp_path / name, codebook_size=CODEBOOK, max_steps=3, seed=7, **QUICK)
            for name in ("a", "b")]
    first, second = (load_file(run / "model.safetensors") for run in runs)
    for name in first:
        torch.testing.assert_close(first[name], second[name], atol=0, rtol=0)


@pytest.mark.parametrize("mode", ["lora", "qlora"])
def test_adapters_on_a_pretrained_base_reduce_loss_and_merge(corpus, hub_llama, tmp_path, mode):
    from transformers import AutoModelForCausalLM

    out = train_model(corpus, str(hub_llama), tmp_path / mode, codebook_size=CODEBOOK, mode=mode, epochs=4,
                      learning_rate=1e-2, **QUICK)
    summary = _summary(out)
    # a random 32-wide base learns slowly through rank-16 adapters; a clear drop is what a short run can show
    assert summary["mode"] == mode and summary["final_loss"] < summary["first_loss"] - 0.1
    model = AutoModelForCausalLM.from_pretrained(out)
    base = load_file(hub_llama / "model.safetensors")
    merged = model.state_dict()
    # adapters were merged into the attention weights; the motion rows of the embedding were trained too
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[f"language_model.{key}"], base[key])
    assert merged["language_model.model.layers.0.self_attn.q_proj.weight"].dtype == torch.float32
    assert not any("lora" in name for name in merged)
    assert model.config.motion_token_offset >= base["model.embed_tokens.weight"].shape[0]
    # the PEFT adapter is saved as trained, next to the merged weights
    from peft import PeftConfig

    adapter = PeftConfig.from_pretrained(out / "adapter")
    assert adapter.peft_type.value == "LORA" and adapter.r == 16
    assert any("lora_A" in k for k in load_file(out / "adapter" / "adapter_model.safetensors"))


def test_a_bfloat16_base_is_saved_in_bfloat16(corpus, tmp_path):
    from transformers import AutoModelForCausalLM

    base = make_hub_llama(tmp_path / "bf16-base")
    AutoModelForCausalLM.from_pretrained(base).to(torch.bfloat16).save_pretrained(base)
    out = train_model(corpus, str(base), tmp_path / "model", codebook_size=CODEBOOK, mode="lora", max_steps=2,
                      **QUICK)
    weights = load_file(out / "model.safetensors")
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.bfloat16}
    assert _summary(out)["arguments"]["save_dtype"] == "bfloat16"
    forced = train_model(corpus, str(base), tmp_path / "fp32", codebook_size=CODEBOOK, mode="lora", max_steps=2,
                         save_dtype="float32", **QUICK)
    assert load_file(forced / "model.safetensors")["language_model.lm_head.weight"].dtype == torch.float32


def test_qlora_with_gradient_checkpointing_trains_every_layer(corpus, hub_llama, tmp_path):
    """The GPU recipe's settings (README): QLoRA with activations recomputed in the backward pass still gives every
    adapted layer a gradient (a checkpointed segment whose inputs need no gradient would give none)."""
    out = train_model(corpus, str(hub_llama), tmp_path / "model", codebook_size=CODEBOOK, mode="qlora", max_steps=2,
                      gradient_checkpointing=True, learning_rate=1e-2, **QUICK)
    assert _summary(out)["arguments"]["gradient_checkpointing"] is True
    factors = {k: v for k, v in load_file(out / "adapter" / "adapter_model.safetensors").items() if "lora_B" in k}
    # 7 projections x 2 layers (the first step's learning rate is 0: warm-up)
    assert len(factors) == 14 and all(bool(v.any()) for v in factors.values())


def test_qlora_still_trains_after_an_evaluation_pass(hub_llama):
    """bitsandbytes repacks 4-bit weights on a no-grad CPU forward unless told not to (FACTS.md)."""
    from peft import PeftModel

    from biomechgpt.training.train_lm import BiomechGPTTrainingArguments, build_model, _wrap_for_mode

    args = BiomechGPTTrainingArguments(mode="qlora")
    model, _ = build_model(str(hub_llama), "qlora", [], None, CODEBOOK, args)
    peft_model = _wrap_for_mode(model, "qlora", args)
    # QLoRA: the base's linear layers are 4-bit and frozen; only the adapters, the new tokens' rows and the projector
    # train
    import bitsandbytes as bnb

    assert isinstance(peft_model, PeftModel)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in peft_model.modules())
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all(("lora_" in n or "trainable_tokens" in n or "modules_to_save" in n) for n in trainable)
    assert sum("lora_A" in n for n in trainable) == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 layers
    ids = torch.randint(0, 100, (2, 12))

    def lora_grad_norm() -> float:
        peft_model.train()
        peft_model.zero_grad()
        peft_model(input_ids=ids, labels=ids).loss.backward()
        return sum(float(p.grad.abs().sum()) for n, p in peft_model.named_parameters()
                   if "lora_" in n and p.grad is not None)

    assert lora_grad_norm() > 0
    peft_model.eval()
    with torch.no_grad():
        peft_model(input_ids=ids)
    assert lora_grad_norm() > 0


def test_resume_after_interruption_matches_an_uninterrupted_run(corpus, tmp_path):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:
                raise KeyboardInterrupt

    common = dict(codebook_size=CODEBOOK, max_steps=8, save_steps=4, **QUICK)
    with pytest.raises(KeyboardInterrupt):
        train_model(corpus, "tiny-s", tmp_path / "resumed", callbacks=[Interrupt()], **common)
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-4").is_dir()
    resumed = train_model(corpus, "tiny-s", tmp_path / "resumed", **common)
    straight = train_model(corpus, "tiny-s", tmp_path / "straight", **common)
    assert _summary(resumed)["steps"] == 8
    first, second = load_file(resumed / "model.safetensors"), load_file(straight / "model.safetensors")
    for name in first:
        torch.testing.assert_close(first[name], second[name], atol=1e-6, rtol=1e-5)


def test_a_resumed_run_reads_its_tokenized_conversations_back(corpus, tmp_path, monkeypatch):
    import shutil

    from transformers import TrainerCallback

    from biomechgpt.training import train_lm

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    data = tmp_path / "corpus"
    shutil.copytree(corpus, data)
    common = dict(codebook_size=CODEBOOK, max_steps=4, save_steps=2, **QUICK)
    for name in ("same", "changed"):
        with pytest.raises(KeyboardInterrupt):
            train_model(data, "tiny-s", tmp_path / name, callbacks=[Interrupt()], **common)
        assert len(list((tmp_path / name / "checkpoints").glob("conversations-*.parquet"))) == 1

    def tokenize_again(*args, **kwargs):
        raise AssertionError("the corpus was tokenized again")

    monkeypatch.setattr(train_lm, "build_conversations", tokenize_again)
    resumed = train_model(data, "tiny-s", tmp_path / "same", **common)
    summary = _summary(resumed)
    assert summary["steps"] == 4 and summary["train_conversations"] == 24
    assert summary["estimate"]["steps"] == 2  # what was left after checkpoint-2
    assert not (resumed / "checkpoints").exists()
    # a corpus that changed since is tokenized again
    shard = next((data / "data").glob("train-*.parquet"))
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10 ** 9))
    with pytest.raises(AssertionError, match="tokenized again"):
        train_model(data, "tiny-s", tmp_path / "changed", **common)


def test_train_command_saves_the_motion_tokenizer(corpus, tmp_path, capsys):
    tokenizer_dir = tmp_path / "tokenizer"
    make_motion_tokenizer().save_pretrained(tokenizer_dir)
    out = tmp_path / "model"
    status = main(["train", "--dataset", str(corpus), "--tokenizer", str(tokenizer_dir), "--out", str(out),
                   "--base-model", "tiny-s", "--max-steps", "2", "--no-progress", "--motion-input", "codes"])
    assert status == 0
    assert (out / "motion_tokenizer" / "config.json").is_file() and (out / "README.md").is_file()
    assert json.loads((out / "config.json").read_text())["motion_tokenizer_config"]["codebook_size"] == CODEBOOK


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "/nonexistent"], "--dataset /nonexistent: folder not found"),
    (["--base-model", "tiny", "--lora"], "starts from random weights"),
    (["--base-model", "nonsense"], "not a folder, a Hub id"),
    (["--alignment-epochs", "-1"], "alignment_epochs must be a finite number >= 0, got -1.0"),
    (["--readout-answer-weight", "nan"], "readout_answer_weight must be a finite number >= 0, got nan"),
    (["--encoder-mirror", "1.5"], "encoder_mirror must be a share between 0 and 1, got 1.5"),
])
def test_train_command_bad_input_is_one_line(corpus, tmp_path, capsys, argv, message):
    base = ["train", "--dataset", str(corpus), "--out", str(tmp_path / "m"), "--tokenizer", str(tmp_path),
            "--motion-input", "codes"]
    make_motion_tokenizer().save_pretrained(tmp_path)
    capsys.readouterr()
    args = base + argv if argv[0] != "--dataset" else ["train", *argv, "--out", str(tmp_path / "m")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


ACCELERATE_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch.distributed as dist
    from biomechgpt.training.train_lm import train_model
    out = train_model(sys.argv[1], "tiny-s", sys.argv[2], codebook_size=16, max_steps=3, batch_size=2,
                      motion_input="codes", progress=False, tokenizer_vocab_size=300)
    print(json.dumps({"rank": dist.get_rank(), "world": dist.get_world_size(), "backend": dist.get_backend()}))
""")


def test_two_gloo_processes_under_accelerate_launch(corpus, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(ACCELERATE_SCRIPT)
    accelerate = Path(sys.executable).with_name("accelerate")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parent))
    done = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(corpus),
                           str(tmp_path / "model")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # the two ranks print at the same moment: their lines may run together, so read each JSON object, not each line
    ranks = [json.loads(found) for found in re.findall(r'\{"rank"[^{}]*\}', done.stdout)]
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    assert all(r["world"] == 2 and r["backend"] == "gloo" for r in ranks)
    summary = _summary(tmp_path / "model")
    assert summary["steps"] == 3 and (tmp_path / "model" / "model.safetensors").is_file()


def test_closed_set_candidates_share_one_answer_template():
    import pandas as pd

    from biomechgpt.training.train_lm import corpus_task_metadata

    rows = [  # template 0 words every label, template 1 only walking (and more often)
        ("walking", "Activity: a walk.", 0), ("running", "Activity: a run.", 0), ("running", "Activity: a jog.", 0),
        ("running", "Activity: a run.", 0), ("walking", "A walk.", 1), ("walking", "A walk.", 1),
        ("walking", "A walk.", 1), ("running", "Jogging.", 2),
    ]
    frame = pd.DataFrame([{"task": "activity", "question": "What is this?", "answer": a, "target_label": label,
                           "target_value": None, "target_unit": None, "answer_template": t} for label, a, t in rows])
    meta = corpus_task_metadata(frame)
    assert meta["answer_candidates"]["activity"] == {"running": "Activity: a run.", "walking": "Activity: a walk."}
    assert meta["answer_log_priors"]["activity"]["running"] == pytest.approx(math.log(2 / 4))
    assert meta["answer_log_priors"]["activity"]["walking"] == pytest.approx(math.log(1 / 4))
    # without template ids the shortest frequent wording of each label is used
    meta = corpus_task_metadata(frame.drop(columns="answer_template"))
    assert meta["answer_candidates"]["activity"] == {"running": "Jogging.", "walking": "A walk."}


def test_motion_loss_labels_the_codes_too(corpus, tmp_path):
    plain = _summary(train_model(corpus, "tiny-s", tmp_path / "plain", codebook_size=CODEBOOK, max_steps=2, **QUICK))
    coded = _summary(train_model(corpus, "tiny-s", tmp_path / "coded", codebook_size=CODEBOOK, max_steps=2,
                                 motion_loss=True, **QUICK))
    assert plain["motion_loss_tokens"] == 0 and plain["arguments"]["motion_loss"] is False
    # every training conversation labels its 12 codes and </motion>, on top of the same answer tokens
    assert coded["motion_loss_tokens"] == 13 * coded["train_conversations"]
    assert coded["answer_tokens"] == plain["answer_tokens"]


def test_captions_carry_each_labelled_answer_of_a_trial_once(corpus):
    from biomechgpt.training.train_lm import CAPTION_QUESTION, build_captions
    from test_train_helpers import make_tiny_model_and_processor

    frame = load_corpus(corpus, "train")
    _, processor = make_tiny_model_and_processor(motion_input="continuous")
    captions = build_captions(frame, processor, corpus_task_metadata(frame)["task_kinds"])
    assert sorted(c["trial_id"] for c in captions) == sorted(frame["trial_id"].unique())
    tokenizer = processor.tokenizer
    for caption in captions:
        rows = frame[frame["trial_id"] == caption["trial_id"]].sort_values("id")
        labelled = [t for t in caption["labels"] if t != -100]
        text = tokenizer.decode(labelled, skip_special_tokens=True)
        expected = " ".join(rows[rows["task"] == task]["answer"].iloc[0].strip() for task in ("activity", "cadence"))
        assert text.strip() == expected  # first answer of each labelled task, in task order; no summary
        assert CAPTION_QUESTION in tokenizer.decode(caption["input_ids"], skip_special_tokens=True)
        assert caption["input_ids"].count(processor.motion_feature_token_id) == processor.num_motion_tokens


def test_readout_tokens_one_per_closed_set_and_numeric_task_unless_switched_off():
    import pandas as pd

    from biomechgpt.training.train_lm import BiomechGPTTrainingArguments, _encoder_fields

    frame = pd.DataFrame([
        {"trial_id": "a", "task": "activity", "target_label": "walking", "target_value": None, "target_unit": None},
        {"trial_id": "b", "task": "activity", "target_label": "squat", "target_value": None, "target_unit": None},
        {"trial_id": "a", "task": "cadence", "target_label": None, "target_value": 100.0, "target_unit": "steps/min"},
        {"trial_id": "a", "task": "summary", "target_label": None, "target_value": None, "target_unit": None},
    ])
    metadata = {"task_kinds": {"activity": "closed", "cadence": "numeric", "summary": "free"},
                "task_units": {"cadence": "steps/min"}}
    fields = _encoder_fields(frame, metadata, BiomechGPTTrainingArguments(num_motion_tokens=8))
    assert fields["motion_readout_tasks"] == ["activity", "cadence"] and fields["motion_readout_sizes"] == [2, 1]
    assert fields["num_motion_tokens"] == 10  # 8 query tokens + 2 readout tokens
    for args in (BiomechGPTTrainingArguments(motion_readout=False), BiomechGPTTrainingArguments(encoder_epochs=0),
                 BiomechGPTTrainingArguments(motion_input="codes")):
        assert _encoder_fields(frame, metadata, args) == args.motion_encoder  # no stage-1 heads, no readout


def test_encoder_mirror_gives_the_readout_heads_two_views_with_the_sides_swapped():
    import pandas as pd

    from biomechgpt.processing.motion import MIRROR_ORDER, MIRROR_SIGN
    from biomechgpt.training.train_lm import BiomechGPTTrainingArguments, _encoder_fields

    frame = pd.DataFrame([
        {"trial_id": t, "task": "impairment_side", "target_label": side, "target_value": None, "target_unit": None}
        for t, side in (("a", "left"), ("b", "none"), ("c", "right"), ("d", "bilateral"))
    ] + [{"trial_id": "a", "task": "cadence", "target_label": None, "target_value": 100.0,
          "target_unit": "steps/min"}])
    metadata = {"task_kinds": {"impairment_side": "closed", "cadence": "numeric"},
                "task_units": {"cadence": "steps/min"}}
    fields = _encoder_fields(frame, metadata, BiomechGPTTrainingArguments(encoder_mirror=0.5))
    assert fields["motion_readout_tasks"] == ["impairment_side", "cadence"]
    # labels in sorted order: bilateral, left, none, right -> left and right swap
    assert fields["motion_readout_mirror"] == [[0, 3, 2, 1], []]
    assert fields["motion_mirror_channels"] == list(MIRROR_ORDER)
    assert fields["motion_mirror_signs"] == list(MIRROR_SIGN)
    assert "motion_mirror_channels" not in _encoder_fields(frame, metadata, BiomechGPTTrainingArguments())
    with pytest.raises(ValueError, match="share between 0 and 1"):
        BiomechGPTTrainingArguments(encoder_mirror=2.0)
    with pytest.raises(ValueError, match="descriptor token has no mirror image"):
        BiomechGPTTrainingArguments(encoder_mirror=0.5, motion_descriptors=True)
