"""Tests of the MotionTokenizer: features, the VQ-VAE model contract, the user-facing tokenizer and its training."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import biomechgpt
from biomechgpt.processing.configuration_motion_tokenizer import MotionTokenizerConfig
from biomechgpt.processing.feature_extraction_motion import MotionFeatureExtractor
from biomechgpt.processing.modeling_motion_tokenizer import MotionTokenizerModel
from biomechgpt.processing.motion import CANONICAL_COORDINATES, Motion, MotionInputError
from biomechgpt.processing.tokenization_motion import MotionTokenizer

COORDS = list(CANONICAL_COORDINATES)
I_ROT, I_TX, I_TY, I_TZ = (COORDS.index(c) for c in ("pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz"))


def synthetic_motion(n_frames: int, seed: int, heading: float = 0.0, start=(0.0, 0.0), turn_rate: float = 0.0,
                     arms: bool = True, pattern_seed: int | None = None) -> Motion:
    """A gait-like canonical motion: two harmonics per angle, a walker moving along a (turning) heading.

    `pattern_seed` fixes the joint-angle pattern (amplitudes, offsets, phases) so several trials share one gait and
    differ in cadence, speed and path; by default every trial has its own pattern.
    """
    rng = np.random.default_rng(seed)
    pattern = np.random.default_rng(seed if pattern_seed is None else 10_000 + pattern_seed)
    t = np.arange(n_frames) / 30.0
    freq = rng.uniform(0.8, 1.1)
    phase = 2 * np.pi * freq * t
    values = np.zeros((n_frames, len(COORDS)))
    amp = pattern.uniform(0.05, 0.5, len(COORDS))
    values[:] = (pattern.uniform(-0.2, 0.2, len(COORDS))
                 + amp * np.sin(phase[:, None] + pattern.uniform(0, 6, len(COORDS)))
                 + 0.3 * amp * np.sin(2 * phase[:, None] + pattern.uniform(0, 6, len(COORDS))))
    theta = heading + turn_rate * t + 0.05 * np.sin(phase)
    speed = rng.uniform(0.8, 1.4) + 0.05 * np.sin(2 * phase)
    # OpenSim: x forward, z right; a heading theta points the walker along (cos, -sin)
    values[:, I_TX] = start[0] + np.concatenate([[0], np.cumsum(speed[:-1] * np.cos(theta[:-1]))]) / 30.0
    values[:, I_TZ] = start[1] + np.concatenate([[0], np.cumsum(-speed[:-1] * np.sin(theta[:-1]))]) / 30.0
    values[:, I_ROT] = theta
    values[:, I_TY] = 0.93 + 0.02 * np.sin(2 * phase)
    mask = np.ones(len(COORDS), dtype=bool)
    if not arms:
        arm = [COORDS.index(c) for c in biomechgpt.processing.motion.ARM_COORDINATES]
        values[:, arm] = 0.0
        mask[arm] = False
    return Motion(COORDS, values.astype(np.float32), 30.0, mask, {"source": f"synthetic {seed}"})


TINY = dict(codebook_size=16, hidden_size=32, num_residual_blocks=2, codebook_dim=8)


@pytest.fixture(scope="module")
def tiny_tokenizer() -> MotionTokenizer:
    torch.manual_seed(0)
    model = MotionTokenizerModel(MotionTokenizerConfig(**TINY))
    # spread the random codebook over the latent range so several codes are in use
    with torch.no_grad():
        model.quantizer.codebook.normal_(0.0, 0.3)
    return MotionTokenizer(model)


# ------------------------------------------------------------------------------------------------------------------
# configuration and features


@pytest.mark.parametrize(
    "kwargs",
    [{"downsample_factor": 3}, {"downsample_factor": 1}, {"codebook_size": 0}, {"ema_decay": 1.0},
     {"min_frames": 2}, {"coordinates": ["knee_angle_r"]}, {"hidden_size": -4},
     {"reconstruction_error_limits": {"hands": 3.0}}, {"reconstruction_error_limits": {"arms": -1.0}},
     {"reconstruction_error_limits": {"arms": float("nan")}}, {"reconstruction_error_limits": [3.0]},
     {"out_of_distribution_factor": 0.5}, {"reconstruction_error_percentile": 0}],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        MotionTokenizerConfig(**kwargs)


def test_config_round_trip(tmp_path):
    config = MotionTokenizerConfig(**TINY)
    config.save_pretrained(tmp_path)
    loaded = MotionTokenizerConfig.from_pretrained(tmp_path)
    assert loaded.model_type == "biomechgpt_motion_tokenizer"
    assert loaded.to_dict() == config.to_dict()
    assert loaded.num_downsampling_layers == 2 and loaded.num_coordinates == 33


def test_features_invert_to_the_motion_up_to_start_position_and_heading():
    extractor = MotionFeatureExtractor()
    motion = synthetic_motion(150, seed=1, heading=0.7, start=(3.0, -2.0), turn_rate=0.4)
    features, mask = extractor.motion_to_features(motion)
    assert mask.all() and features.shape == (150, 33)
    back = extractor.features_to_motion(features)
    expected = motion.values.astype(np.float64).copy()
    expected[:, [I_TX, I_TZ, I_ROT]] -= expected[0, [I_TX, I_TZ, I_ROT]]
    # the decoded walker starts at the origin facing heading 0: turn the expected path back by the start heading
    dx, dz = expected[:, I_TX].copy(), expected[:, I_TZ].copy()
    theta0 = motion.values[0, I_ROT]
    c, s = np.cos(theta0), np.sin(theta0)
    expected[:, I_TX] = c * dx - s * dz
    expected[:, I_TZ] = s * dx + c * dz
    np.testing.assert_allclose(back.values, expected, atol=2e-4)


def test_features_do_not_change_when_the_trial_is_moved_or_turned():
    extractor = MotionFeatureExtractor()
    a, _ = extractor.motion_to_features(synthetic_motion(120, seed=2, heading=0.0, start=(0.0, 0.0)))
    b, _ = extractor.motion_to_features(synthetic_motion(120, seed=2, heading=2.5, start=(5.0, 7.0)))
    np.testing.assert_allclose(a, b, atol=1e-4)
    # the pelvis height and the joint angles are kept as they are
    motion = synthetic_motion(120, seed=2)
    np.testing.assert_array_equal(a[:, I_TY], motion.values[:, I_TY])


def test_heading_wrap_does_not_create_a_jump():
    extractor = MotionFeatureExtractor()
    motion = synthetic_motion(120, seed=3, heading=np.pi - 0.05, turn_rate=0.5)
    wrapped = motion.values.copy()
    wrapped[:, I_ROT] = (wrapped[:, I_ROT] + np.pi) % (2 * np.pi) - np.pi
    a, _ = extractor.motion_to_features(motion)
    b, _ = extractor.motion_to_features(Motion(COORDS, wrapped, 30.0))
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_feature_batch_pads_by_repeating_then_masks():
    extractor = MotionFeatureExtractor()
    batch = extractor([synthetic_motion(10, 0), synthetic_motion(21, 1, arms=False)])
    assert batch["motion_values"].shape == (2, 24, 33)
    assert batch["motion_mask"].sum(1).tolist() == [12, 24]
    assert batch["motion_lengths"].tolist() == [10, 21]
    assert not batch["coordinate_mask"][1, COORDS.index("elbow_flex_r")]
    torch.testing.assert_close(batch["motion_values"][0, 10], batch["motion_values"][0, 9], rtol=0, atol=0)
    assert float(batch["motion_values"][0, 12:].abs().sum()) == 0.0


# ------------------------------------------------------------------------------------------------------------------
# model contract


def test_shapes(tiny_tokenizer):
    out = tiny_tokenizer([synthetic_motion(37, 0), synthetic_motion(100, 1), synthetic_motion(8, 2)])
    assert out["motion_codes"].shape == (3, 25) and out["motion_codes"].dtype == torch.long
    assert out["motion_codes_mask"].dtype == torch.bool
    assert out["motion_codes_lengths"].tolist() == [10, 25, 2]
    assert out["motion_lengths"].tolist() == [37, 100, 8]
    assert out["motion_codes_mask"].sum(1).tolist() == [10, 25, 2]
    assert int(out["motion_codes"].max()) < tiny_tokenizer.codebook_size
    model = tiny_tokenizer.model
    features = tiny_tokenizer.feature_extractor([synthetic_motion(40, 0)])
    model_out = model(features["motion_values"], features["motion_mask"], features["coordinate_mask"])
    assert model_out.motion_values.shape == (1, 40, 33) and model_out.latents.shape == (1, 10, 8)
    assert model_out.loss.ndim == 0 and torch.isfinite(model_out.loss)


def test_batch_equals_one_at_a_time(tiny_tokenizer):
    motions = [synthetic_motion(n, seed=i, arms=i % 2 == 0) for i, n in enumerate([9, 37, 64, 130, 211, 50])]
    batch = tiny_tokenizer(motions)
    assert len(set(batch["motion_codes"].flatten().tolist())) > 2, "the test needs several codes in use"
    for i, motion in enumerate(motions):
        assert batch["motion_codes"][i, : batch["motion_codes_lengths"][i]].tolist() == tiny_tokenizer.encode(motion)
    # the same holds in the model without the tokenizer's length sorting: compare latents too
    model = tiny_tokenizer.model
    features = tiny_tokenizer.feature_extractor(motions)
    with torch.inference_mode():
        together = model.encode(features["motion_values"], features["motion_mask"], features["coordinate_mask"])
        for i, motion in enumerate(motions):
            alone_f = tiny_tokenizer.feature_extractor([motion])
            alone = model.encode(alone_f["motion_values"], alone_f["motion_mask"], alone_f["coordinate_mask"])
            n = alone.motion_codes.shape[1]
            torch.testing.assert_close(together.latents[i, :n], alone.latents[0], rtol=1e-5, atol=1e-5)
            assert torch.equal(together.motion_codes[i, :n], alone.motion_codes[0])


def test_eval_mode_is_deterministic_and_forward_equals_encode_decode(tiny_tokenizer):
    model = tiny_tokenizer.model.eval()
    features = tiny_tokenizer.feature_extractor([synthetic_motion(64, 5), synthetic_motion(40, 6)])
    inputs = (features["motion_values"], features["motion_mask"], features["coordinate_mask"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.inference_mode():
        a, b = model(*inputs), model(*inputs)
        encoded = model.encode(*inputs)
        decoded = model.decode(encoded.motion_codes, encoded.motion_codes_mask)
    assert torch.equal(a.motion_values, b.motion_values) and torch.equal(a.motion_codes, b.motion_codes)
    assert torch.equal(a.motion_codes, encoded.motion_codes)
    assert torch.equal(a.motion_values, decoded.motion_values)
    # eval mode never moves the codebook
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_save_and_load_give_identical_weights_and_codes(tiny_tokenizer, tmp_path):
    tiny_tokenizer.metrics = {"note": "kept"}
    tiny_tokenizer.save_pretrained(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "metrics.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    loaded = MotionTokenizer.from_pretrained(tmp_path)
    original = tiny_tokenizer.model.state_dict()
    reloaded = loaded.model.state_dict()
    assert set(original) == set(reloaded)
    for key, value in original.items():
        torch.testing.assert_close(reloaded[key], value, rtol=0, atol=0)
    assert loaded.metrics == {"note": "kept"}
    motion = synthetic_motion(77, 9)
    assert loaded.encode(motion) == tiny_tokenizer.encode(motion)
    tiny_tokenizer.metrics = {}


def test_auto_classes_resolve_after_import(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    code = (
        "import sys, biomechgpt\n"
        "from transformers import AutoConfig, AutoModel, AutoFeatureExtractor, AutoProcessor\n"
        f"p = {str(tmp_path)!r}\n"
        "print(type(AutoConfig.from_pretrained(p)).__name__, type(AutoModel.from_pretrained(p)).__name__,"
        " type(AutoFeatureExtractor.from_pretrained(p)).__name__, type(AutoProcessor.from_pretrained(p)).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [
        "MotionTokenizerConfig", "MotionTokenizerModel", "MotionFeatureExtractor", "MotionFeatureExtractor"
    ]


def test_saved_folder_loads_as_remote_code_without_biomechgpt(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    motion = synthetic_motion(40, 12)
    np.save(tmp_path / "values.npy", motion.values)
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'biomechgpt':\n"
        "            raise ModuleNotFoundError(name, name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "from transformers import AutoModel, AutoFeatureExtractor\n"
        f"p = {str(tmp_path)!r}\n"
        "model = AutoModel.from_pretrained(p, trust_remote_code=True)\n"
        "features = AutoFeatureExtractor.from_pretrained(p, trust_remote_code=True)([np.load(p + '/values.npy')])\n"
        "out = model.encode(features['motion_values'], features['motion_mask'], features['coordinate_mask'])\n"
        "print(type(model).__module__.startswith('transformers_modules'), out.motion_codes[0].tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    remote, codes = result.stdout.strip().split(" ", 1)
    assert remote == "True" and json.loads(codes) == tiny_tokenizer.encode(motion)


def test_lazy_public_names():
    assert biomechgpt.MotionTokenizer is MotionTokenizer
    assert biomechgpt.MotionTokenizerConfig is MotionTokenizerConfig
    assert biomechgpt.MotionTokenizerModel is MotionTokenizerModel


# ------------------------------------------------------------------------------------------------------------------
# tokenizer API


def test_decode_of_encode_is_a_canonical_motion_of_the_right_length(tiny_tokenizer):
    motion = synthetic_motion(49, 4)
    codes = tiny_tokenizer.encode(motion)
    assert len(codes) == 13 and all(isinstance(c, int) for c in codes)
    decoded = tiny_tokenizer.decode(codes)
    assert decoded.is_canonical and decoded.n_frames == 52 and decoded.mask.all()
    assert np.isfinite(decoded.values).all()
    assert decoded.values[0, I_TX] == 0.0 and decoded.values[0, I_TZ] == 0.0 and decoded.values[0, I_ROT] == 0.0
    assert tiny_tokenizer.decode(codes, n_frames=49).n_frames == 49
    assert tiny_tokenizer.reconstruct(motion).n_frames == 49
    # numpy and torch codes decode the same
    np.testing.assert_array_equal(tiny_tokenizer.decode(np.array(codes)).values, decoded.values)
    np.testing.assert_array_equal(tiny_tokenizer.decode(torch.tensor(codes)).values, decoded.values)


def test_subset_or_reordered_coordinates_are_accepted(tiny_tokenizer):
    motion = synthetic_motion(40, 8)
    keep = [c for c in reversed(COORDS) if c not in biomechgpt.processing.motion.ARM_COORDINATES]
    partial = Motion(keep, motion.values[:, [COORDS.index(c) for c in keep]], 30.0)
    full_masked = synthetic_motion(40, 8)
    arm = [COORDS.index(c) for c in biomechgpt.processing.motion.ARM_COORDINATES]
    full_masked.values[:, arm] = np.nan  # missing columns may hold anything
    full_masked.mask[arm] = False
    assert tiny_tokenizer.encode(partial) == tiny_tokenizer.encode(full_masked)


def test_array_input_is_read_as_canonical(tiny_tokenizer):
    motion = synthetic_motion(40, 10)
    assert tiny_tokenizer.encode(motion.values) == tiny_tokenizer.encode(motion)
    assert tiny_tokenizer.encode(torch.from_numpy(motion.values)) == tiny_tokenizer.encode(motion)


def _bad_inputs():
    good = synthetic_motion(40, 11)
    nan = synthetic_motion(40, 11)
    nan.values[5, COORDS.index("knee_angle_r")] = np.nan
    unknown = Motion(COORDS[:-1] + ["tail_wag"], good.values, 30.0)
    return {
        "unknown coordinate": (unknown, "unknown coordinates 'tail_wag'"),
        "wrong frame rate": (Motion(COORDS, good.values, 100.0), "frame rate 100 Hz"),
        "nan": (nan, "'knee_angle_r' has 1 non-finite"),
        "too short": (good.slice_frames(0, 5), "too short: 5 frames"),
        "empty batch": ([], "empty batch"),
        "int array": (np.zeros((40, 33), dtype=np.int64), "must hold floats"),
        "wrong shape": (np.zeros((40, 12), dtype=np.float32), "shape (frames, 33)"),
        "3-d array": (np.zeros((2, 40, 33), dtype=np.float32), "shape (frames, 33)"),
        "wrong type": ({"values": 1}, "got dict"),
        "none": (None, "got None"),
        "missing file": ("/nonexistent/walk.mot", "no such file"),
        "nothing present": (Motion(COORDS, good.values, 30.0, np.zeros(33, dtype=bool)), "no coordinate"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_input_gives_a_one_line_error(tiny_tokenizer, case):
    value, message = _bad_inputs()[case]
    with pytest.raises(MotionInputError) as err:
        tiny_tokenizer(value)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "codes, message",
    [([], "no codes"), ([1, 99], "outside the codebook"), ([-1], "outside the codebook"),
     ([0.5, 1.0], "must be integers"), ([[1, 2]], "1-D")],
)
def test_bad_codes_give_a_one_line_error(tiny_tokenizer, codes, message):
    with pytest.raises(MotionInputError) as err:
        tiny_tokenizer.decode(codes)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_motion_in_a_batch_is_named(tiny_tokenizer):
    with pytest.raises(MotionInputError, match=r"^motion 1 \(synthetic 1\): too short"):
        tiny_tokenizer([synthetic_motion(40, 0), synthetic_motion(4, 1)])


def test_real_recording_by_path(tiny_tokenizer, reference_motion_dir):
    path = reference_motion_dir / "subject01_walk1_ik.mot"
    codes = tiny_tokenizer.encode(str(path))
    motion = biomechgpt.load_motion(path)
    assert codes == tiny_tokenizer.encode(motion)
    assert len(codes) == -(-motion.n_frames // 4)


# ------------------------------------------------------------------------------------------------------------------
# training


def _train(out_dir, steps, callbacks=(), resume=True, save_steps=100):
    from biomechgpt.training.motion_tokenizer import (
        MotionTokenizerTrainingArguments,
        train_motion_tokenizer_on_motions,
    )

    motions = [synthetic_motion(90 + 7 * i, seed=100 + i, arms=i % 3 != 0, turn_rate=0.1 * i, pattern_seed=i % 2)
               for i in range(12)]
    args = MotionTokenizerTrainingArguments(
        steps=steps, batch_size=8, min_window=32, max_window=48, warmup_steps=5, save_steps=save_steps,
        learning_rate=3e-3, seed=3, num_threads=1,
    )
    return train_motion_tokenizer_on_motions(
        motions, out_dir, validation_motions=motions[:3], config=MotionTokenizerConfig(**TINY), args=args,
        resume=resume, progress=False, callbacks=callbacks,
    )


def test_training_reduces_the_loss_and_writes_the_folder(tmp_path):
    losses = []
    out = _train(tmp_path / "tok", steps=60, callbacks=[lambda step, logs: losses.append(logs["reconstruction_loss"])])
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["training"]["history"]
    assert history[0]["step"] == 1 and history[-1]["step"] == 60
    assert metrics["validation"]["n_trials"] == 3 and metrics["validation"]["joint_angle_mae_deg"] > 0
    assert not (out / "checkpoints").exists()
    tok = MotionTokenizer.from_pretrained(out)
    assert tok.codebook_size == 16 and len(tok.encode(synthetic_motion(40, 1))) == 10
    # the trained model keeps its normalisation statistics: the pelvis height channel is centred near 0.93 m
    assert abs(float(tok.model.feature_mean[I_TY]) - 0.93) < 0.01
    # the validation trials set the out-of-distribution limits, which the saved config keeps
    limits = tok.config.reconstruction_error_limits
    assert set(limits) == {"pelvis_legs", "arms", "lumbar"} and all(v > 0 for v in limits.values())
    assert metrics["validation"]["reconstruction_error_limits_deg"] == limits
    assert set(metrics["validation"]["joint_angle_mae_deg_per_group"]) == {"pelvis_legs", "arms", "lumbar"}


def test_interrupted_training_resumes_to_the_same_result(tmp_path):
    uninterrupted = _train(tmp_path / "a", steps=12, save_steps=4)

    def interrupt(step, logs):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", steps=12, save_steps=4, callbacks=[interrupt])
    assert (tmp_path / "b" / "checkpoints" / "step-0000006").is_dir()
    resumed = _train(tmp_path / "b", steps=12, save_steps=4)
    assert json.loads((resumed / "metrics.json").read_text())["training"]["resumed_from_step"] == 6
    a = MotionTokenizer.from_pretrained(uninterrupted).model.state_dict()
    b = MotionTokenizer.from_pretrained(resumed).model.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)
    # a finished folder with the same settings is not trained again
    before = (resumed / "model.safetensors").stat().st_mtime_ns
    _train(tmp_path / "b", steps=12, save_steps=4)
    assert (resumed / "model.safetensors").stat().st_mtime_ns == before


def test_training_is_deterministic_for_a_seed(tmp_path):
    a = MotionTokenizer.from_pretrained(_train(tmp_path / "a", steps=5)).model.state_dict()
    b = MotionTokenizer.from_pretrained(_train(tmp_path / "b", steps=5, resume=False)).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_reports_a_missing_cohort_in_one_line(tmp_path, capsys):
    from biomechgpt.cli import main

    assert main(["train-tokenizer", "--cohort", str(tmp_path / "none"), "--out", str(tmp_path / "tok")]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"biomechgpt train-tokenizer: error: {tmp_path / 'none'}: cohort folder not "
                                         "found (create one with biomechgpt simulate)"]
    assert captured.out == "" and not (tmp_path / "tok").exists()


def test_cli_trains_on_a_simulated_cohort(tmp_path, capsys):
    from biomechgpt.cli import main
    from biomechgpt.simulation import simulate_cohort

    cohort = simulate_cohort(tmp_path / "cohort", n_participants=3, seed=0, workers=1)
    real = tmp_path / "real"
    (real / "lab").mkdir(parents=True)
    biomechgpt.save_motion(synthetic_motion(90, seed=5), real / "lab" / "walk.mot")
    out = tmp_path / "tok"
    argv = ["train-tokenizer", "--cohort", str(cohort), "--out", str(out), "--steps", "4", "--seed", "1",
            "--codebook-size", "16", "--hidden-size", "16", "--batch-size", "4", "--threads", "1",
            "--real-motion", str(real), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "joint-angle error" in printed and "codebook usage" in printed
    lines = [" ".join(line.split()) for line in printed.splitlines()]
    real_row = lines.index(f"real recordings 1 in {real}")  # its error follows, overall and per angle group
    assert lines[real_row + 1].startswith("joint-angle error") and lines[real_row + 3].startswith("arms")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["completed_steps"] == 4 and metrics["validation"]["n_trials"] > 0
    # the real recordings are scored beside the simulated validation trials, per angle group
    assert metrics["real"]["files"] == ["lab/walk.mot"] and metrics["real"]["n_trials"] == 1
    assert set(metrics["real"]["joint_angle_mae_deg_per_group"]) == {"pelvis_legs", "arms", "lumbar"}
    trials = biomechgpt.load_cohort(cohort).trials
    assert metrics["training"]["train_trials"] == int((trials["split"] == "train").sum())
    tok = MotionTokenizer.from_pretrained(out)
    assert tok.codebook_size == 16 and tok.codebook.shape == (16, 64)
    # a tokenizer trained before the out-of-distribution limits gets them without training
    limits = tok.config.reconstruction_error_limits
    config = json.loads((out / "config.json").read_text())
    del config["reconstruction_error_limits"]
    (out / "config.json").write_text(json.dumps(config))
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["train-tokenizer", "--cohort", str(cohort), "--out", str(out), "--calibrate-only",
                 "--real-motion", str(real)]) == 0
    printed = capsys.readouterr().out
    assert "out-of-distribution limits" in printed and f"1 in {real}" in printed
    assert MotionTokenizer.from_pretrained(out).config.reconstruction_error_limits == pytest.approx(limits)
    assert (out / "model.safetensors").read_bytes() == before
    assert main(argv[:-1] + ["--steps", "0"]) == 2  # bad argument: one line, status 2
    capsys.readouterr()
    assert main(argv[:-3] + ["--real-motion", str(tmp_path / "none"), "--no-resume"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"biomechgpt train-tokenizer: error: --real-motion {tmp_path / 'none'}: folder not found"]


# ------------------------------------------------------------------------------------------------------------------
# out-of-distribution check


@pytest.fixture(scope="module")
def trained_tokenizer(tmp_path_factory) -> MotionTokenizer:
    return MotionTokenizer.from_pretrained(_train(tmp_path_factory.mktemp("ood") / "tok", steps=60))


def _with_bent_elbows(motion: Motion, degrees: float = 120.0) -> Motion:
    values = motion.values.copy()
    for name in ("elbow_flex_r", "elbow_flex_l"):
        values[:, COORDS.index(name)] = np.radians(degrees)
    return Motion(list(motion.coordinates), values, motion.frame_rate, motion.mask.copy(), dict(motion.meta))


def test_a_training_like_trial_gets_no_warning_and_bent_elbows_do(trained_tokenizer):
    motion = synthetic_motion(120, seed=101, turn_rate=0.1, pattern_seed=1)  # a validation trial's gait
    check = trained_tokenizer.check_motion(motion)
    assert check is not None and check.in_distribution and check.warning is None
    bent = trained_tokenizer.check_motion(_with_bent_elbows(motion))
    assert bent.out_of_range[0] == "arms" and "pelvis_legs" not in bent.out_of_range
    assert bent.errors_deg["arms"] > bent.factor * bent.limits_deg["arms"]
    warning = bent.warning
    assert warning.startswith("This recording is unlike the training data in its arm angles (reconstruction error ")
    assert "99th percentile" in warning and "try without the arm" in warning and "\n" not in warning
    # the errors are those of encode -> decode, per group, over the recorded angles only
    recon = trained_tokenizer.reconstruct(motion)
    legs = [COORDS.index(c) for c in biomechgpt.processing.motion.ANGLE_GROUPS["pelvis_legs"]]
    expected = np.degrees(np.abs(recon.values[:, legs] - motion.values[:, legs]).mean())
    assert check.errors_deg["pelvis_legs"] == pytest.approx(expected, rel=1e-3)
    assert trained_tokenizer.check_motion(synthetic_motion(120, seed=101, arms=False)).errors_deg["arms"] is None


def test_out_of_distribution_limits_survive_save_load_and_remote_code(trained_tokenizer, tmp_path):
    trained_tokenizer.save_pretrained(tmp_path)
    loaded = MotionTokenizer.from_pretrained(tmp_path)
    assert loaded.config.reconstruction_error_limits == trained_tokenizer.config.reconstruction_error_limits
    code = (
        "import sys, json, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'biomechgpt':\n"
        "            raise ModuleNotFoundError(name, name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from transformers import AutoConfig\n"
        f"config = AutoConfig.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)\n"
        "print(json.dumps(config.reconstruction_error_limits))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == trained_tokenizer.config.reconstruction_error_limits


def test_a_tokenizer_saved_before_the_limits_loads_and_checks_nothing(trained_tokenizer, tmp_path):
    trained_tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("reconstruction_error_limits", "reconstruction_error_percentile", "out_of_distribution_factor"):
        config.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(config))
    old = MotionTokenizer.from_pretrained(tmp_path)
    motion = _with_bent_elbows(synthetic_motion(120, seed=101))
    assert old.config.reconstruction_error_limits is None and old.check_motion(motion) is None
    assert old.encode(motion) == trained_tokenizer.encode(motion)


def test_real_recordings_are_scored_per_group_with_subfolders(trained_tokenizer, reference_motion_dir):
    from biomechgpt.training.motion_tokenizer import load_real_motions, reconstruction_metrics

    motions, info = load_real_motions(reference_motion_dir)
    assert "normal.mot" in info["files"] and any(f.startswith("treadmill_walking_expert3/") for f in info["files"])
    scores = reconstruction_metrics(trained_tokenizer, motions)
    assert scores["n_trials"] == len(info["files"]) == len(motions)
    assert set(scores["joint_angle_mae_deg_per_group"]) == {"pelvis_legs", "arms", "lumbar"}


def test_a_missing_real_folder_is_a_one_line_error(tmp_path):
    from biomechgpt.training.motion_tokenizer import load_real_motions

    with pytest.raises(MotionInputError, match="real-recordings folder not found"):
        load_real_motions(tmp_path / "none")
    (tmp_path / "notes.txt").write_text("no motion here")
    with pytest.raises(MotionInputError, match="no readable motion file"):
        load_real_motions(tmp_path)
