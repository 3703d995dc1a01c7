"""The continuous motion path: BiomechGPTMotionEncoder, the projector at the placeholder tokens, answering about
motions (not codes), save/load and remote code for every motion-input setting, and stage-1 encoder training."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

import biomechgpt  # noqa: F401  (registers the Auto classes)
from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM
from biomechgpt.modeling.modeling_motion_encoder import BiomechGPTMotionEncoder
from test_train_helpers import make_motion, make_tiny_model_and_processor

QUESTIONS = ["What activity is the person performing?", "What is the cadence?"]
# "+readout": readout tokens; "+fused": readout tokens whose calibrated heads also weigh into the answers and a
# statistics token (the default training recipe), plus the optional descriptor token; "+mirror": fused readout heads
# that read the motion and its mirror image
READS_MOTION = ["continuous", "both", "continuous+readout", "continuous+fused", "continuous+mirror"]


@pytest.fixture(scope="module", params=READS_MOTION)
def model_and_processor(request):
    motion_input, _, readout = request.param.partition("+")
    model, processor = make_tiny_model_and_processor(motion_input=motion_input, readout=bool(readout),
                                                     readout_weight=1.0 if readout in ("fused", "mirror") else 0.0,
                                                     statistics=readout in ("fused", "mirror"),
                                                     descriptors=readout == "fused", mirror=readout == "mirror")
    model.eval()
    model.processor = processor
    return model, processor


def test_prefix_holds_placeholders_then_codes(model_and_processor):
    model, processor = model_and_processor
    inputs = processor.motion_inputs(make_motion(90))
    codes = processor.encode_motion(inputs["motion"]) if processor.reads_codes else []
    ids = processor.prefix_ids(codes)
    start = ids.index(processor.motion_start_token_id)
    placeholders = ids[start + 1:start + 1 + processor.num_motion_tokens]
    assert placeholders == [model.config.motion_feature_token_id] * processor.num_motion_tokens
    code_ids = ids[start + 1 + processor.num_motion_tokens:-1]
    assert code_ids == [processor.motion_token_offset + c for c in codes]
    assert ids[-1] == processor.motion_end_token_id
    assert inputs["motion_values"].shape == (92, 33)  # 90 frames padded to a multiple of 4


def test_forward_with_frames_equals_forward_with_precomputed_features(model_and_processor):
    model, processor = model_and_processor
    inputs = processor.motion_inputs(make_motion(90))
    codes = processor.encode_motion(inputs["motion"]) if processor.reads_codes else []
    ids = torch.tensor([processor.prefix_ids(codes) + processor.question_ids(QUESTIONS[0])])
    batch = processor.collate_motion_inputs([inputs])
    with torch.no_grad():
        from_frames = model(input_ids=ids, **batch).logits
        features = model.get_motion_features(**batch)
        from_features = model(input_ids=ids, motion_features=features).logits
    torch.testing.assert_close(from_frames, from_features, atol=0, rtol=0)
    assert features.shape == (1, processor.num_motion_tokens, model.config.motion_encoder_hidden_size)


@pytest.mark.parametrize(("statistics_token", "descriptor_size"), [(False, 0), (True, 0), (True, 5)])
def test_encoder_output_does_not_depend_on_batch_padding(statistics_token, descriptor_size):
    torch.manual_seed(0)
    encoder = BiomechGPTMotionEncoder(33, 16, 2, 4, statistics_token=statistics_token,
                                      descriptor_size=descriptor_size).eval()
    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor

    short = {"motion_values": np.random.default_rng(0).normal(size=(40, 33)).astype("float32"),
             "coordinate_mask": np.ones(33, bool), "motion_duration": 1.3}
    long = {"motion_values": np.random.default_rng(1).normal(size=(120, 33)).astype("float32"),
            "coordinate_mask": np.ones(33, bool), "motion_duration": 4.0}
    if descriptor_size:
        short["motion_descriptors"] = np.arange(descriptor_size, dtype="float32")
        long["motion_descriptors"] = -np.arange(descriptor_size, dtype="float32")
    with torch.no_grad():
        alone = encoder(**BiomechGPTProcessor.collate_motion_inputs([short]))
        batched = encoder(**BiomechGPTProcessor.collate_motion_inputs([long, short]))
    torch.testing.assert_close(batched[1], alone[0], atol=1e-5, rtol=1e-5)


def _descriptor_encoder(size: int = 5) -> BiomechGPTMotionEncoder:
    torch.manual_seed(0)
    encoder = BiomechGPTMotionEncoder(33, 16, 1, 4, descriptor_size=size).eval()
    encoder.set_descriptor_statistics(torch.zeros(size), torch.ones(size))
    return encoder


def _frames(batch: int = 1, frames: int = 40) -> dict:
    return {"motion_values": torch.randn(batch, frames, 33),
            "motion_mask": torch.ones(batch, frames, dtype=torch.bool),
            "coordinate_mask": torch.ones(batch, 33, dtype=torch.bool),
            "motion_durations": torch.full((batch,), 2.0)}


def _two_view_encoder() -> BiomechGPTMotionEncoder:
    """An untrained encoder whose readout heads (affected side: left / none / right; a number) read both views."""
    from biomechgpt.processing.motion import MIRROR_ORDER, MIRROR_SIGN

    torch.manual_seed(0)
    return BiomechGPTMotionEncoder(33, 16, 1, 5, readout_sizes=[3, 1], readout_tasks=["impairment_side", "cadence"],
                                   statistics_token=True, mirror_channels=MIRROR_ORDER, mirror_signs=MIRROR_SIGN,
                                   readout_mirror=[[2, 1, 0], []]).eval()


def test_two_view_readout_swaps_the_sides_of_a_mirror_image_exactly():
    """Reading a motion and its mirror image makes the side head mirror-equivariant by construction: the mirror image
    of a recording gets the recording's left and right probabilities swapped, and the same numbers."""
    from biomechgpt.processing.motion import MIRROR_ORDER, MIRROR_SIGN

    encoder = _two_view_encoder()
    inputs = _frames(batch=3, frames=48)
    inputs["coordinate_mask"][0, [30, 31]] = False  # the left arm of the first recording is missing
    order, signs = list(MIRROR_ORDER), torch.tensor(MIRROR_SIGN)
    mirrored = {**inputs, "motion_values": inputs["motion_values"][:, :, order] * signs,
                "coordinate_mask": inputs["coordinate_mask"][:, order]}
    with torch.no_grad():
        _, (side, value) = encoder(**inputs, return_readout=True)
        _, (side_image, value_image) = encoder(**mirrored, return_readout=True)
        one_view = encoder.readout(encoder.encode(**inputs))[0]
    torch.testing.assert_close(side_image, side[:, [2, 1, 0]], atol=1e-5, rtol=0)
    torch.testing.assert_close(value_image, value, atol=1e-5, rtol=0)
    assert not torch.allclose(torch.log_softmax(one_view, 1), side, atol=1e-3)  # one view alone is not equivariant
    torch.testing.assert_close(side.exp().sum(1), torch.ones(3))  # still log-probabilities


@pytest.mark.parametrize("fields, message", [
    ({"readout_mirror": [[2, 1, 0], []]}, "come together"),
    ({"mirror_channels": list(range(33))}, "come together"),
    ({"mirror_channels": [0] * 33, "readout_mirror": [[2, 1, 0], []]}, "must order the 33 channels"),
    ({"mirror_channels": list(range(33)), "mirror_signs": [2.0] * 33, "readout_mirror": [[2, 1, 0], []]},
     "33 signs"),
    ({"mirror_channels": list(range(33)), "readout_mirror": [[0, 0, 1], []]}, "must order each readout head"),
])
def test_bad_two_view_settings_are_refused_in_one_line(fields, message):
    with pytest.raises(ValueError, match=message):
        BiomechGPTMotionEncoder(33, 16, 1, 5, readout_sizes=[3, 1], readout_tasks=["impairment_side", "cadence"],
                                **fields)


def test_stage_one_mirror_images_swap_the_side_labels():
    """Trials whose 'affected side' is the leg that swings less: mirror images with the label swapped are the same
    kind of evidence, so training on mirror images only still learns the side, and the heads read both ways."""
    from biomechgpt.training.pretrain_encoder import encoder_targets, mirror_label_order, pretrain_motion_encoder

    def trials(n: int, seed: int):
        rng = np.random.default_rng(seed)
        features, rows = {}, []
        for k in range(n):
            side = ("left", "right")[k % 2]
            values = rng.normal(scale=0.05, size=(60, 33)).astype("float32")
            phase = 2 * np.pi * np.arange(60) / 30.0 + rng.uniform(0, 2 * np.pi)
            weak = 13 if side == "left" else 6  # the knee (left: channel 13, right: 6) that swings a third as much
            for channel in (6, 13):
                values[:, channel] += (0.3 if channel == weak else 1.0) * np.sin(phase).astype("float32")
            features[f"t{seed}-{k}"] = {"motion_values": values, "coordinate_mask": np.ones(33, bool),
                                        "motion_duration": 2.0}
            rows.append({"trial_id": f"t{seed}-{k}", "task": "impairment_side", "target_label": side,
                         "target_value": None, "target_unit": None})
        return features, encoder_targets(pd.DataFrame(rows), {"impairment_side": "closed"}, {})

    assert mirror_label_order(["bilateral", "left", "none", "right"]) == [0, 3, 2, 1]
    assert mirror_label_order(["cane", "none"]) == [0, 1]
    train_features, train_targets = trials(96, 0)
    val_features, val_targets = trials(32, 1)
    torch.manual_seed(0)
    encoder = BiomechGPTMotionEncoder(33, 16, 1, 2)
    summary = pretrain_motion_encoder(encoder, train_features, train_targets, validation_features=val_features,
                                      validation_targets=val_targets, epochs=16, batch_size=16, learning_rate=3e-3,
                                      progress=False, mirror=1.0, report_features=val_features,
                                      report_targets=val_targets)
    # every training crop was a mirror image with its label swapped: read unmirrored, the side is still right (had
    # the labels not been swapped, every side would be read wrong)
    assert summary["report_scores"]["impairment_side"] == 1.0
    assert summary["report_scores_both_views"]["impairment_side"] == 1.0
    with pytest.raises(ValueError, match="share between 0 and 1"):
        pretrain_motion_encoder(encoder, train_features, train_targets, epochs=1, mirror=1.5, progress=False)


def test_the_descriptor_token_reads_the_descriptors_and_holds_against_wild_values():
    encoder = _descriptor_encoder()
    frames = _frames()
    with torch.no_grad():
        base = encoder(**frames, motion_descriptors=torch.zeros(1, 5))
        moved = encoder(**frames, motion_descriptors=torch.tensor([[3.0, 0, 0, 0, 0]]))
        wild = encoder(**frames, motion_descriptors=torch.tensor([[1e9, float("nan"), float("inf"), 0, -1e9]]))
        clipped = encoder(**frames, motion_descriptors=torch.tensor([[8.0, 0, 8.0, 0, -8.0]]))
    # the descriptor token is the last query token; the attending ones do not see the descriptors
    torch.testing.assert_close(base[:, :-1], moved[:, :-1], atol=0, rtol=0)
    assert not torch.allclose(base[:, -1], moved[:, -1])
    # standardised descriptors are clipped to +-8 and a missing one reads as the training mean
    torch.testing.assert_close(wild, clipped, atol=0, rtol=0)


@pytest.mark.parametrize(("size", "descriptors", "message"), [
    (5, None, "reads 5 descriptors per motion, expected shape \\(1, 5\\), got none"),
    (5, torch.zeros(1, 4), "got shape \\(1, 4\\)"),
    (0, torch.zeros(1, 4), "reads no descriptors"),
])
def test_descriptors_that_do_not_fit_the_encoder_are_refused_in_one_line(size, descriptors, message):
    encoder = _descriptor_encoder(size) if size else BiomechGPTMotionEncoder(33, 16, 1, 4).eval()
    with pytest.raises(ValueError, match=message):
        encoder(**_frames(), motion_descriptors=descriptors)


def test_the_gait_descriptors_are_the_recording_level_part_of_all_of_them():
    from biomechgpt.processing.motion_descriptors import descriptor_names, motion_descriptors

    motion = make_motion(300)
    every = dict(zip(descriptor_names(), motion_descriptors(motion)))
    gait = dict(zip(descriptor_names("gait"), motion_descriptors(motion, "gait")))
    assert set(gait) < set(every) and "turning_rad" not in gait and "cadence_knee_acf_steps_min" in gait
    assert not any(name.endswith(("_mean", "_std", "_p5", "_p95")) and not name.startswith("pelvis_height")
                   for name in gait)
    assert all(every[name] == value for name, value in gait.items())
    with pytest.raises(ValueError, match="descriptor set must be one of"):
        motion_descriptors(motion, "posture")


def test_the_processor_computes_descriptors_of_the_whole_recording():
    from biomechgpt.processing.motion_descriptors import descriptor_names, motion_descriptors

    _, processor = make_tiny_model_and_processor(motion_input="continuous", descriptors=True)
    long = make_motion(processor.frame_window + 200, seed=3)
    inputs = processor.motion_inputs(long)
    assert len(inputs["motion_values"]) == processor.frame_window  # the frames are the middle window...
    np.testing.assert_array_equal(inputs["motion_descriptors"],  # ...the descriptors are of all of it
                                  motion_descriptors(inputs["motion"], "gait").astype("float32"))
    assert inputs["motion_descriptors"].shape == (len(descriptor_names("gait")),)
    other = processor.motion_inputs(make_motion(processor.frame_window + 200, seed=4))
    assert other["fingerprint"] != inputs["fingerprint"]
    batch = processor.collate_motion_inputs([inputs, other])
    assert batch["motion_descriptors"].shape == (2, len(descriptor_names("gait")))
    with pytest.raises(ValueError, match="1 of 2 motions in a batch have them"):
        processor.collate_motion_inputs([inputs, {k: v for k, v in other.items() if k != "motion_descriptors"}])
    _, plain = make_tiny_model_and_processor(motion_input="continuous")
    assert "motion_descriptors" not in plain.motion_inputs(long)


def test_answers_batch_equals_single_and_distinct_motions_are_not_confused(model_and_processor):
    model, processor = model_and_processor
    model.clear_answer_cache()
    first, second = make_motion(90, seed=0), make_motion(90, seed=1)  # same length: same prefix token ids
    batched = model.answer_batch([first, second, first], [QUESTIONS[0]] * 3, processor=processor)
    alone_second = model.answer(second, QUESTIONS[0], processor=processor)
    alone_first = model.answer(first, QUESTIONS[0], processor=processor)  # after `second`: no stale remembered prefix
    assert batched[0].confidence == pytest.approx(alone_first.confidence, abs=1e-5)
    assert batched[1].confidence == pytest.approx(alone_second.confidence, abs=1e-5)
    assert batched[0].confidence == pytest.approx(batched[2].confidence, abs=1e-6)
    assert abs(alone_first.confidence - alone_second.confidence) > 1e-6  # the motion reaches the answer
    prefix = model.encode_prefix(first, processor=processor)
    assert prefix.fingerprint and model.answer(prefix, QUESTIONS[0], processor=processor).confidence == \
        pytest.approx(alone_first.confidence, abs=1e-5)


def test_codes_are_refused_by_a_model_that_reads_motion(model_and_processor):
    model, processor = model_and_processor
    with pytest.raises(ValueError, match="reads the motion itself"):
        model.answer([1, 2, 3, 4], QUESTIONS[0], processor=processor)


def test_save_and_load_round_trip_is_exact(tmp_path, model_and_processor):
    model, processor = model_and_processor
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = BiomechGPTForCausalLM.from_pretrained(tmp_path).eval()
    original, reloaded = model.state_dict(), loaded.state_dict()
    assert original.keys() == reloaded.keys()
    assert any(k.startswith("motion_encoder.") for k in original) and "motion_encoder.feature_std" in original
    for name in original:
        torch.testing.assert_close(original[name], reloaded[name], atol=0, rtol=0)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["motion_input"] == model.config.motion_input and (tmp_path / "modeling_motion_encoder.py").is_file()
    from transformers import AutoProcessor

    reloaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert (reloaded_processor.motion_input, reloaded_processor.num_motion_tokens) == (
        processor.motion_input, model.config.num_motion_tokens)
    assert config.get("motion_readout_sizes", []) == model.config.motion_readout_sizes
    for name in ("motion_readout_labels", "motion_readout_scales", "readout_answer_weight"):
        assert getattr(loaded.config, name) == getattr(model.config, name)
    motion = make_motion(90)
    mine = model.answer(motion, QUESTIONS, processor=processor)
    theirs = loaded.answer(motion, QUESTIONS, processor=reloaded_processor)
    # the weights are equal to the bit; the reloaded processor also knows the corpus's label names, which can move a
    # probability in its seventh digit
    assert theirs[0].label == mine[0].label and theirs[0].confidence == pytest.approx(mine[0].confidence, abs=1e-6)
    assert (theirs[1].answer, theirs[1].value) == (mine[1].answer, mine[1].value)
    assert theirs[1].spread == pytest.approx(mine[1].spread, abs=1e-6)


REMOTE_SCRIPT = textwrap.dedent("""
    import sys, json
    sys.modules["biomechgpt"] = None  # the package is not importable: everything must come from the folder
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoProcessor
    folder, values = sys.argv[1], np.load(sys.argv[2])
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    answer, number = model.answer(values, ["What activity is the person performing?", "What is the cadence?"])
    print(json.dumps({"model": type(model).__module__, "label": answer.label, "confidence": answer.confidence,
                      "value": number.value, "spread": number.spread}))
""")


def test_remote_code_answers_like_the_package(tmp_path, model_and_processor):
    model, processor = model_and_processor
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    motion = make_motion(90)
    np.save(tmp_path / "motion.npy", motion.values)
    (tmp_path / "remote.py").write_text(REMOTE_SCRIPT)
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(tmp_path / "remote.py"), str(folder), str(tmp_path / "motion.npy")],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert not info["model"].startswith("biomechgpt")
    local, number = model.answer(motion.values, QUESTIONS, processor=processor)
    assert info["label"] == local.label and info["confidence"] == pytest.approx(local.confidence, abs=1e-6)
    assert info["value"] == number.value and info["spread"] == pytest.approx(number.spread, abs=1e-6)


def _synthetic_trials(n: int, seed: int) -> tuple[dict, pd.DataFrame]:
    """Trials whose activity is the frequency of a knee oscillation and whose 'cadence' is that frequency: an
    encoder that reads motion separates them; one that does not stays at chance."""
    rng = np.random.default_rng(seed)
    features, rows = {}, []
    for k in range(n):
        fast = k % 2 == 1
        hz = rng.uniform(1.6, 2.0) if fast else rng.uniform(0.8, 1.2)
        frames = int(rng.integers(60, 100))
        values = rng.normal(scale=0.05, size=(frames, 33)).astype("float32")
        phase = 2 * np.pi * hz * np.arange(frames) / 30.0 + rng.uniform(0, 2 * np.pi)
        for channel in range(6, 14):  # the leg angles swing together, each with its own lag
            values[:, channel] += np.sin(phase + channel).astype("float32")
        trial = f"t{seed}-{k}"
        features[trial] = {"motion_values": values, "coordinate_mask": np.ones(33, bool),
                           "motion_duration": frames / 30.0}
        rows.append({"trial_id": trial, "task": "activity", "target_label": "running" if fast else "walking",
                     "target_value": None, "target_unit": None})
        rows.append({"trial_id": trial, "task": "cadence", "target_label": None, "target_value": hz * 60.0,
                     "target_unit": "steps/min"})
    return features, pd.DataFrame(rows)


def _stage_one_inputs():
    """Features and targets (activity, cadence) of 160 synthetic training and 40 validation trials."""
    from biomechgpt.training.pretrain_encoder import encoder_targets

    kinds, units = {"activity": "closed", "cadence": "numeric"}, {"cadence": "steps/min"}
    train_features, train_rows = _synthetic_trials(160, seed=0)
    val_features, val_rows = _synthetic_trials(40, seed=1)
    targets = encoder_targets(train_rows, kinds, units)
    return train_features, targets, val_features, encoder_targets(val_rows, kinds, units, classes=targets.classes)


def test_stage_one_encoder_training_learns_to_read_motion():
    from biomechgpt.training.pretrain_encoder import pretrain_motion_encoder

    train_features, targets, val_features, val_targets = _stage_one_inputs()
    torch.manual_seed(0)
    encoder = BiomechGPTMotionEncoder(33, 16, 2, 2)
    summary = pretrain_motion_encoder(encoder, train_features, targets, validation_features=val_features,
                                      validation_targets=val_targets, epochs=12, batch_size=16,
                                      learning_rate=3e-3, progress=False)
    first, best = summary["curve"][0], summary["curve"][summary["selected_epoch"] - 1]
    # kept: the epoch whose tasks score highest on average (the loss only breaks ties)
    mean_scores = [np.mean(list(e["validation_scores"].values())) for e in summary["curve"]]
    assert np.mean(list(best["validation_scores"].values())) == max(mean_scores)
    assert best["validation_loss"] < 0.5 * first["validation_loss"]
    assert best["validation_scores"]["activity"] == 1.0
    assert best["validation_scores"]["cadence"] > 0.9
    assert float(encoder.feature_std[10]) > 0.5 > float(encoder.feature_std[20])  # from the training frames


def test_stage_one_trains_the_readout_heads_the_encoder_keeps():
    """With readout tokens, stage 1's heads are the encoder's own: after training, the activity readout token
    separates the two activities (its head reads them right), and the token is what the language model receives."""
    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor
    from biomechgpt.training.pretrain_encoder import pretrain_motion_encoder

    train_features, targets, val_features, val_targets = _stage_one_inputs()
    torch.manual_seed(0)
    encoder = BiomechGPTMotionEncoder(33, 16, 2, 4, readout_sizes=[2, 1], readout_tasks=["activity", "cadence"])
    assert encoder.num_queries == 2
    before = [h.weight.detach().clone() for h in encoder.readout_heads]
    summary = pretrain_motion_encoder(encoder, train_features, targets, validation_features=val_features,
                                      validation_targets=val_targets, epochs=12, batch_size=16,
                                      learning_rate=3e-3, progress=False)
    assert summary["curve"][summary["selected_epoch"] - 1]["validation_scores"]["activity"] == 1.0
    assert all(not torch.equal(b, h.weight) for b, h in zip(before, encoder.readout_heads))  # trained in place
    encoder.eval()
    ids = sorted(val_features)
    with torch.no_grad():
        inputs = BiomechGPTProcessor.collate_motion_inputs(
            [{**val_features[t], "motion_values": BiomechGPTProcessor.crop_frames(
                val_features[t]["motion_values"], 1024)} for t in ids])
        tokens = encoder(**inputs)
        logits = encoder.readout(encoder.encode(**inputs))[0]
    assert tokens.shape == (len(ids), 4, 16)
    labels = val_targets.labels["activity"][[val_targets.trial_ids.index(t) for t in ids]]
    assert (logits.argmax(1).numpy() == labels).all()
    # the activity readout token differs between the two activities far more than within one
    token = tokens[:, 2]
    centroids = [token[torch.as_tensor(labels == k)].mean(0) for k in (0, 1)]
    spread = max(float((token[torch.as_tensor(labels == k)] - centroids[k]).norm(dim=1).mean()) for k in (0, 1))
    assert float((centroids[0] - centroids[1]).norm()) > 2 * spread


def test_calibrated_readout_heads_weigh_into_closed_and_numeric_answers():
    """Closed set: the answer's probabilities are the language model's times the head's, renormalised. Numbers: the
    head's normal belief (its value, its validation error) pulls the language model's grid belief towards the head's
    value; with a large weight the answer is the head's value."""
    model, processor = make_tiny_model_and_processor(motion_input="continuous", readout=True, readout_weight=1.0)
    model.eval()
    motion = make_motion(90)
    prefix = model.encode_prefix(motion, processor=processor)
    assert set(prefix.readout) == {"activity", "cadence"} and prefix.readout["activity"].shape == (2,)
    fused = model.answer(prefix, QUESTIONS, processor=processor)
    model.config.readout_answer_weight = 0.0
    try:
        alone = model.answer(prefix, QUESTIONS, processor=processor)
    finally:
        model.config.readout_answer_weight = 1.0
    head = dict(zip(["running", "walking"], torch.log_softmax(prefix.readout["activity"], -1).tolist()))
    joint = {label: np.log(p) + head[label] for label, p in alone[0].probabilities.items()}
    total = np.logaddexp.reduce(list(joint.values()))
    for label, probability in fused[0].probabilities.items():
        assert probability == pytest.approx(float(np.exp(joint[label] - total)), abs=1e-5)
    assert abs(fused[0].confidence - alone[0].confidence) > 1e-4  # the head moved the answer

    centre = float(prefix.readout["cadence"][0]) * 5.0 + 110.0
    assert abs(fused[1].value - centre) < abs(alone[1].value - centre)
    model.config.readout_answer_weight = 1000.0
    try:
        sure = model.answer(prefix, QUESTIONS[1], processor=processor)
    finally:
        model.config.readout_answer_weight = 1.0
    assert sure.value == pytest.approx(min(max(centre, 95), 125), abs=0.6) and sure.spread < 0.5


def test_stage_one_returns_the_heads_calibration():
    from biomechgpt.training.pretrain_encoder import pretrain_motion_encoder

    train_features, targets, val_features, val_targets = _stage_one_inputs()
    torch.manual_seed(0)
    encoder = BiomechGPTMotionEncoder(33, 16, 2, 4, readout_sizes=[2, 1], readout_tasks=["activity", "cadence"])
    summary = pretrain_motion_encoder(encoder, train_features, targets, validation_features=val_features,
                                      validation_targets=val_targets, epochs=4, batch_size=16,
                                      learning_rate=3e-3, progress=False)
    calibration = summary["readout_calibration"]
    assert calibration["labels"] == {"activity": ["running", "walking"]}
    mean, std, error = calibration["scales"]["cadence"]
    cadences = targets.values["cadence"]
    assert (mean, std) == pytest.approx((np.nanmean(cadences), np.nanstd(cadences)))
    selected = summary["curve"][summary["selected_epoch"] - 1]
    assert error == selected["validation_errors"]["cadence"] and 0 < error < std
    assert set(calibration["scales"]) == {"cadence"}


def test_training_stores_the_calibration_only_where_the_heads_keep_their_meaning():
    from transformers import LlamaConfig

    from biomechgpt.modeling.configuration_biomechgpt import BiomechGPTConfig
    from biomechgpt.training.train_lm import BiomechGPTTrainingArguments, _calibrate_readout

    calibration = {"labels": {"activity": ["running", "walking"]},
                   "scales": {"cadence": [110.0, 5.0, 4.0]}}
    text = LlamaConfig(vocab_size=316, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=4)

    def config():
        return BiomechGPTConfig(text_config=text, codebook_size=16, motion_input="continuous",
                                motion_feature_token_id=297, num_motion_tokens=4,
                                motion_readout_tasks=["activity", "cadence"], motion_readout_sizes=[2, 1])

    calibrated = config()
    _calibrate_readout(calibrated, calibration, BiomechGPTTrainingArguments())
    assert calibrated.motion_readout_labels == [["running", "walking"], []]
    assert calibrated.motion_readout_scales == [[], [110.0, 5.0, 4.0]] and calibrated.readout_answer_weight == 1.0
    for args in (BiomechGPTTrainingArguments(readout_answer_weight=0.0),
                 BiomechGPTTrainingArguments(freeze_motion_encoder=False)):  # stage 2 retrains the heads
        untouched = config()
        _calibrate_readout(untouched, calibration, args)
        assert untouched.readout_answer_weight == 0.0 and untouched.motion_readout_labels is None
    with pytest.raises(ValueError, match="readout_answer_weight must be a finite number >= 0"):
        BiomechGPTTrainingArguments(readout_answer_weight=-1.0)


@pytest.mark.parametrize(("fields", "message"), [
    ({"motion_readout_tasks": ["activity"], "motion_readout_sizes": [2, 1]}, "one entry per readout task"),
    ({"motion_readout_labels": [["a", "b"]], "motion_readout_scales": [[]]}, "one entry per readout task"),
    ({"motion_readout_labels": [["a"], []], "motion_readout_scales": [[], [1.0, 1.0, 1.0]]},
     "1 labels for 2 outputs"),
    ({"motion_readout_labels": [["a", "b"], []]}, "come together"),
    ({"motion_readout_labels": [["a", "b"], []], "motion_readout_scales": [[], [1.0, 0.0, 1.0]]},
     "std and error above 0"),
    ({"motion_readout_labels": [["a", "b"], []], "motion_readout_scales": [[1.0], [1.0, 1.0, 1.0]]},
     "a closed-set head has no scale"),
    ({"readout_answer_weight": 1.0}, "needs motion_readout_labels and motion_readout_scales"),
    ({"readout_answer_weight": float("nan")}, "finite number >= 0"),
    ({"motion_readout_tasks": ["activity"], "motion_readout_sizes": [0]}, "at least 1"),
    ({"motion_readout_tasks": list("abcd"), "motion_readout_sizes": [2] * 4}, "must exceed the 4 readout tokens"),
    ({"motion_readout_tasks": list("abc"), "motion_readout_sizes": [2] * 3, "motion_statistics_token": True},
     "plus the statistics token"),
    ({"motion_statistics_token": "yes"}, "must be true or false"),
    ({"motion_descriptor_size": -1}, "whole number of at least 0"),
    ({"motion_descriptor_size": True}, "whole number of at least 0"),
    ({"motion_readout_tasks": list("abc"), "motion_readout_sizes": [2] * 3, "motion_descriptor_size": 4},
     "plus the descriptor token"),
    ({"motion_mirror_channels": list(range(33))}, "come together"),
    ({"motion_mirror_channels": [0] * 33, "motion_readout_mirror": [[1, 0], []]}, "must order the 33 feature"),
    ({"motion_mirror_channels": list(range(33)), "motion_mirror_signs": [0.5] * 33,
      "motion_readout_mirror": [[1, 0], []]}, "33 signs"),
    ({"motion_mirror_channels": list(range(33)), "motion_readout_mirror": [[0, 0], []]}, "must order each readout"),
    ({"motion_mirror_channels": list(range(33)), "motion_readout_mirror": [[1, 0], []], "motion_descriptor_size": 4},
     "descriptor token has no mirror image"),
])
def test_bad_readout_settings_are_refused_in_one_line(fields, message):
    from transformers import LlamaConfig

    from biomechgpt.modeling.configuration_biomechgpt import BiomechGPTConfig

    text = LlamaConfig(vocab_size=316, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=4)
    with pytest.raises(ValueError, match=message):
        BiomechGPTConfig(text_config=text, codebook_size=16, motion_input="continuous", motion_feature_token_id=297,
                         num_motion_tokens=4, **{"motion_readout_tasks": ["activity", "cadence"],
                                                 "motion_readout_sizes": [2, 1], **fields})


def test_participant_answer_averages_the_recordings_label_probabilities(model_and_processor):
    model, processor = model_and_processor
    recordings = [make_motion(90, seed=0), make_motion(120, seed=1), make_motion(60, seed=2)]
    alone = [model.answer(m, QUESTIONS[0], processor=processor) for m in recordings]
    joint = model.answer_participant(recordings, QUESTIONS[0], processor=processor)
    for label, probability in joint.probabilities.items():
        assert probability == pytest.approx(sum(a.probabilities[label] for a in alone) / 3, abs=1e-5)
    assert joint.recordings == 3 and joint.label == max(joint.probabilities, key=joint.probabilities.get)
    assert sum(joint.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="not a closed-set task"):
        model.answer_participant(recordings, QUESTIONS[1], processor=processor)


def test_participant_level_scores_vote_over_each_persons_trials():
    from biomechgpt.evaluation.evaluate import participant_level_scores

    rows = pd.DataFrame({
        "task": ["diagnosis"] * 6 + ["activity"],
        "trial_id": ["a1", "a2", "a3", "b1", "b2", "b2", "a1"],
        "participant_id": ["A", "A", "A", "B", "B", "B", "A"],
        "reference": ["stroke"] * 3 + ["healthy"] * 3 + ["walking"],
        "prediction": ["stroke", "healthy", "stroke", "stroke", "healthy", "healthy", "walking"],
        "baseline_prediction": ["healthy", "healthy", "stroke", "healthy", "healthy", "healthy", "walking"],
    })
    scores = participant_level_scores(rows, ["diagnosis", "activity"])
    assert set(scores) == {"diagnosis"}  # activity belongs to a trial, not a person
    # BiomechGPT: A -> stroke (2 of 3), B -> a tie between healthy and stroke (trial b2 votes once): healthy first
    assert scores["diagnosis"]["biomechgpt"]["macro_f1"] == 1.0
    assert scores["diagnosis"]["baseline"]["macro_f1"] == pytest.approx(1 / 3)  # both called healthy
    assert scores["diagnosis"]["n_participants"] == 2


def test_soft_tokens_start_at_the_scale_of_the_text_embeddings(model_and_processor):
    model, processor = model_and_processor
    batch = processor.collate_motion_inputs([processor.motion_inputs(make_motion(120, seed=s)) for s in range(4)])
    with torch.no_grad():
        soft = model.multi_modal_projector(model.get_motion_features(**batch)).norm(dim=-1).mean()
    text = model.get_input_embeddings().weight[:model.config.motion_start_token_id].norm(dim=-1).mean()
    assert 0.5 < float(soft / text) < 2.0
