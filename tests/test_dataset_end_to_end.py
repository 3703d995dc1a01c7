"""`biomechgpt build-dataset` on a small real cohort (`biomechgpt simulate`) with a tiny real MotionTokenizer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from biomechgpt.dataset_builder import TASKS, parse_answer

simulation = pytest.importorskip("biomechgpt.simulation")
tokenization = pytest.importorskip("biomechgpt.processing.tokenization_motion")


@pytest.fixture(scope="module")
def real_inputs(tmp_path_factory) -> tuple[Path, Path]:
    import torch

    from biomechgpt.processing.configuration_motion_tokenizer import MotionTokenizerConfig
    from biomechgpt.processing.modeling_motion_tokenizer import MotionTokenizerModel

    root = tmp_path_factory.mktemp("e2e")
    cohort = simulation.simulate_cohort(root / "cohort", n_participants=4, seed=1, workers=1)
    torch.manual_seed(0)
    model = MotionTokenizerModel(MotionTokenizerConfig(hidden_size=16, num_residual_blocks=1, codebook_size=16,
                                                       codebook_dim=8))
    tokenization.MotionTokenizer(model).save_pretrained(root / "tokenizer")
    return cohort, root / "tokenizer"


def test_build_dataset_command_on_a_real_cohort(tmp_path, real_inputs, capsys):
    import datasets

    from biomechgpt.cli import main
    from biomechgpt.cohort import load_cohort

    cohort_dir, tokenizer_dir = real_inputs
    out = tmp_path / "qa"
    status = main(["build-dataset", "--cohort", str(cohort_dir), "--tokenizer", str(tokenizer_dir), "--out", str(out),
                   "--seed", "2"])
    report = capsys.readouterr().out
    assert status == 0
    assert "summary" in report and f"to {out}" in report

    corpus = datasets.load_dataset(str(out))
    rows = pd.concat([corpus[s].to_pandas() for s in corpus], ignore_index=True)
    cohort = load_cohort(cohort_dir)
    assert set(rows.trial_id) == set(cohort.trials.trial_id)
    assert rows.groupby("participant_id").split.nunique().max() == 1
    for row in rows.itertuples():
        parsed = parse_answer(row.task, row.answer)
        if TASKS[row.task].kind == "numeric":
            assert (parsed.value, parsed.unit) == (row.target_value, row.target_unit)
        else:
            assert parsed.label == row.target_label

    # the codes are the tokenizer's codes for the stored motion
    tokenizer = tokenization.MotionTokenizer.from_pretrained(tokenizer_dir)
    # (the builder encodes trials in batches; a batch's other lengths change the float rounding of the convolutions,
    # which can flip a near-tie between two codes of this untrained tokenizer: 1 code in 143 was seen to differ)
    for trial_id in list(cohort.trials.trial_id[:3]):
        codes = list(rows[rows.trial_id == trial_id].motion_codes.iloc[0])
        alone = tokenizer.encode(cohort.motion(trial_id))
        assert len(codes) == len(alone)
        assert sum(a != b for a, b in zip(codes, alone)) <= max(1, len(codes) // 100)

    # every timed test and every gait trial with ground truth got its measurement question
    measured = cohort.trials[cohort.trials.cadence_steps_per_min.notna()]
    assert set(measured.trial_id) == set(rows[rows.task == "cadence"].trial_id)
    tug = cohort.trials[(cohort.trials.activity == "timed_up_and_go") & cohort.trials.test_time_s.notna()]
    assert set(tug.trial_id) == set(rows[rows.task == "tug_time"].trial_id)


def test_a_tokenizer_folder_without_weights_is_a_one_line_error(tmp_path, real_inputs):
    import shutil

    from biomechgpt.dataset_builder import build_dataset
    from biomechgpt.processing.motion import MotionInputError

    cohort_dir, tokenizer_dir = real_inputs
    broken = tmp_path / "tokenizer"
    shutil.copytree(tokenizer_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(MotionInputError, match="could not be loaded") as info:
        build_dataset(cohort_dir, broken, tmp_path / "qa")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "qa").exists()


def test_training_a_model_that_reads_motion_on_a_real_cohort(tmp_path, real_inputs):
    """Stage 1 (the encoder alone) and stage 2 (projector + LM) on a simulated cohort's motions, the cohort found
    next to the corpus as `biomechgpt run` lays it out; the saved model answers about a cohort motion."""
    import json
    import shutil

    from biomechgpt.cohort import load_cohort
    from biomechgpt.dataset_builder import build_dataset
    from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM
    from biomechgpt.training.train_lm import train_model

    cohort_dir, tokenizer_dir = real_inputs
    run = tmp_path / "run"
    shutil.copytree(cohort_dir, run / "cohort")
    build_dataset(run / "cohort", tokenizer_dir, run / "dataset", seed=0)
    out = train_model(run / "dataset", "tiny-s", run / "model", motion_tokenizer=str(tokenizer_dir), max_steps=4,
                      batch_size=4, encoder_epochs=3, encoder_batch_size=8, num_motion_tokens=4, alignment_epochs=1,
                      motion_encoder_hidden_size=16, tokenizer_vocab_size=400, progress=False)
    summary = json.loads((out / "training_summary.json").read_text())
    encoder = summary["motion_encoder"]
    assert [e["epoch"] for e in encoder["curve"]] == [1, 2, 3] and encoder["frozen"] is True
    assert encoder["curve"][-1]["train_loss"] < encoder["curve"][0]["train_loss"]
    alignment = summary["alignment"]  # stage 2a: one caption per training trial, one epoch
    assert alignment["conversations"] == encoder["trials"] and alignment["steps"] == -(-encoder["trials"] // 4)
    model = BiomechGPTForCausalLM.from_pretrained(out).eval()
    # 4 query tokens, then one readout token per closed-set and numeric task of the corpus (stage 1's heads)
    readout = model.config.motion_readout_tasks
    assert model.config.motion_input == "continuous" and model.config.num_motion_tokens == 4 + len(readout)
    assert {"activity", "diagnosis", "cadence"} <= set(readout) and "summary" not in readout
    assert model.motion_encoder.num_queries == 4 and len(model.motion_encoder.readout_heads) == len(readout)
    # the heads' calibration, so that answers weigh them in: every closed-set head knows exactly its task's answer
    # labels (else its reading could not count), every numeric head its scale and a held-out error
    processor = model.processor
    assert model.config.readout_answer_weight == 1.0
    for task, labels, scale in zip(readout, model.config.motion_readout_labels, model.config.motion_readout_scales):
        if processor.task_kinds[task] == "closed":
            assert sorted(labels) == sorted(processor.answer_candidates[task]) and scale == []
        else:
            assert labels == [] and len(scale) == 3 and scale[1] > 0 and scale[2] > 0
    cohort = load_cohort(run / "cohort")
    trial = cohort.trials.trial_id.iloc[0]
    answer = model.answer(cohort.motion(trial), "What activity is the person performing?")
    assert answer.task == "activity" and set(answer.probabilities) >= {answer.label}
    with pytest.raises(ValueError, match="reads the motion itself"):
        model.answer([1, 2, 3], "What activity is the person performing?")
    with pytest.raises(Exception, match="cohort folder not found"):
        train_model(tmp_path / "run" / "dataset", "tiny-s", tmp_path / "m2", motion_tokenizer=str(tokenizer_dir),
                    max_steps=1, cohort_dir=tmp_path / "nowhere", progress=False)
