"""Builders shared by the model, processor, training and ask tests (no tests here).

A small QA corpus in the contract's layout whose answers are a function of the motion codes (so a short training can
learn them), a tiny Llama with a `tokenizers`-trained BPE tokenizer saved like a Hub checkpoint, and processors for
them. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["CODEBOOK", "ACTIVITY_BY_CODE", "make_corpus", "make_hub_llama", "make_tiny_model_and_processor",
           "make_motion_tokenizer", "make_motion"]

CODEBOOK = 16
# Trials whose codes come from the low half of the codebook are walking, the high half running.
ACTIVITY_BY_CODE = {"walking": range(0, 8), "running": range(8, 16)}
_ACTIVITY_ANSWERS = {"walking": ("The person is performing walking.", "Walking."),
                     "running": ("The person is performing running.", "Running.")}
_ACTIVITY_QUESTIONS = ("What activity is the person performing?", "Name the activity in this trial.")
_CADENCE_QUESTIONS = ("What is the cadence?", "How many steps per minute?")


def make_corpus(folder: Path, *, n_trials: int = 24, seed: int = 0, n_codes: int = 12) -> Path:
    """A QA corpus folder (`data/{split}-00000.parquet`) with activity (closed), cadence (numeric) and summary
    (free) questions; 2 splits."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_trials):
        activity = "walking" if t % 2 == 0 else "running"
        codes = rng.choice(list(ACTIVITY_BY_CODE[activity]), size=n_codes).tolist()
        cadence = 100 if activity == "walking" else 160
        split = "train" if t < n_trials * 3 // 4 else "validation"
        for k, question in enumerate(_ACTIVITY_QUESTIONS):
            rows.append(dict(task="activity", question=question, answer=_ACTIVITY_ANSWERS[activity][k % 2],
                             target_label=activity, target_value=None, target_unit=None))
        rows.append(dict(task="cadence", question=_CADENCE_QUESTIONS[t % 2],
                         answer=f"The cadence is about {cadence} steps/min.", target_label=None,
                         target_value=float(cadence), target_unit="steps/min"))
        rows.append(dict(task="summary", question="Describe this trial.", answer=f"{activity.capitalize()}.",
                         target_label=None, target_value=None, target_unit=None))
        for k in range(len(rows) - 4, len(rows)):
            rows[k].update(id=f"t{t:03d}-{k}", participant_id=f"p{t:03d}", trial_id=f"t{t:03d}", split=split,
                           motion_codes=codes)
    frame = pd.DataFrame(rows)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, part in frame.groupby("split"):
        part.reset_index(drop=True).to_parquet(folder / "data" / f"{split}-00000.parquet")
    (folder / "README.md").write_text("---\nconfigs: []\n---\n# test corpus\n")
    return folder


def make_hub_llama(folder: Path, *, seed: int = 0) -> Path:
    """A random tiny `LlamaForCausalLM` and a bare BPE tokenizer (no chat template), saved like a Hub checkpoint."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from biomechgpt.training.tiny_lm import train_bpe_tokenizer

    texts = [q for q in _ACTIVITY_QUESTIONS + _CADENCE_QUESTIONS] + [a for p in _ACTIVITY_ANSWERS.values() for a in p]
    tokenizer = train_bpe_tokenizer(texts * 4 + ["The cadence is about 100 steps/min."], vocab_size=320,
                                    chat_template=False)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, bos_token_id=None)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_tiny_model_and_processor(*, seed: int = 0, tie: bool = True, motion_input: str = "codes",
                                  readout: bool = False, readout_weight: float = 0.0, statistics: bool = False,
                                  descriptors: bool = False, mirror: bool = False):
    """An untrained `BiomechGPTForCausalLM` (hidden 32, 2 layers) and its processor with activity / cadence /
    summary task metadata; with `motion_input` "continuous" or "both", a motion encoder (hidden 16, 4 soft tokens)
    and a MotionTokenizer in the processor; with `readout`, two more soft tokens: readouts of activity and cadence.
    A `readout_weight` above 0 calibrates the heads (cadence head: mean 110, std 5, error 4 steps/min) and gives
    cadence a value grid (95-125), so that both kinds of answer weigh the heads in. With `statistics`, the encoder's
    last query token pools the frames' mean and standard deviation (`motion_statistics_token`); with `descriptors`,
    one more query token reads the recording's descriptors (`motion_descriptor_size`, the processor computes them);
    with `mirror` (and `readout`), the readout heads read the motion and its mirror image."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM
    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor
    from biomechgpt.training.tiny_lm import train_bpe_tokenizer

    texts = list(_ACTIVITY_QUESTIONS + _CADENCE_QUESTIONS) + [a for p in _ACTIVITY_ANSWERS.values() for a in p]
    tokenizer = train_bpe_tokenizer(texts * 4, vocab_size=300)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         tie_word_embeddings=tie, pad_token_id=0, eos_token_id=1, bos_token_id=None)
    torch.manual_seed(seed)
    from biomechgpt.processing.motion_descriptors import descriptor_names

    encoder = {"num_motion_tokens": 4, "motion_encoder_hidden_size": 16, "motion_encoder_layers": 1,
               "motion_statistics_token": statistics,
               "motion_descriptor_size": len(descriptor_names("gait")) if descriptors else 0}
    if readout:
        encoder |= {"num_motion_tokens": 6, "motion_readout_tasks": ["activity", "cadence"],
                    "motion_readout_sizes": [2, 1]}
    if mirror:
        from biomechgpt.processing.motion import MIRROR_ORDER, MIRROR_SIGN

        encoder |= {"motion_mirror_channels": list(MIRROR_ORDER), "motion_mirror_signs": list(MIRROR_SIGN),
                    "motion_readout_mirror": [[0, 1], []]}
    if readout_weight:
        encoder |= {"motion_readout_labels": [["running", "walking"], []],
                    "motion_readout_scales": [[], [110.0, 5.0, 4.0]], "readout_answer_weight": readout_weight}
    model = BiomechGPTForCausalLM.from_language_model(LlamaForCausalLM(config), tokenizer, codebook_size=CODEBOOK,
                                                      codebook=torch.randn(CODEBOOK, 8), seed=seed,
                                                      motion_input=motion_input, motion_encoder=encoder)
    processor = BiomechGPTProcessor(
        tokenizer, make_motion_tokenizer(seed) if motion_input != "codes" else None,
        motion_token_offset=model.config.motion_token_offset, codebook_size=CODEBOOK,
        motion_input=motion_input, num_motion_tokens=encoder["num_motion_tokens"], motion_descriptors=descriptors,
        task_kinds={"activity": "closed", "cadence": "numeric", "summary": "free"},
        answer_candidates={"activity": {"walking": "Walking.", "running": "Running."}},
        answer_log_priors={"activity": {"walking": -0.69, "running": -0.69}},
        task_units={"cadence": "steps/min"},
        task_questions={"activity": list(_ACTIVITY_QUESTIONS), "cadence": list(_CADENCE_QUESTIONS),
                        "summary": ["Describe this trial."]},
        numeric_answers={"cadence": [{"template": "The cadence is about {} steps/min.", "decimals": 0, "low": 95,
                                      "high": 125, "step": 1, "scale": 1.0}]} if readout_weight else None,
    )
    return model, processor


def make_motion_tokenizer(seed: int = 0):
    """An untrained MotionTokenizer with a 16-code codebook (the corpus's codes fit it)."""
    import torch

    from biomechgpt.processing.configuration_motion_tokenizer import MotionTokenizerConfig
    from biomechgpt.processing.modeling_motion_tokenizer import MotionTokenizerModel
    from biomechgpt.processing.tokenization_motion import MotionTokenizer

    torch.manual_seed(seed)
    config = MotionTokenizerConfig(hidden_size=16, num_residual_blocks=1, codebook_size=CODEBOOK, codebook_dim=8)
    return MotionTokenizer(MotionTokenizerModel(config))


def make_motion(frames: int = 90, seed: int = 0):
    """A canonical `Motion` of small random joint angles."""
    from biomechgpt import CANONICAL_COORDINATES, CANONICAL_FRAME_RATE, Motion

    values = np.random.default_rng(seed).normal(size=(frames, len(CANONICAL_COORDINATES))).astype("float32") * 0.1
    return Motion(list(CANONICAL_COORDINATES), values, CANONICAL_FRAME_RATE)
