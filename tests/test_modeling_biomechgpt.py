"""BiomechGPTConfig / BiomechGPTForCausalLM: vocabulary extension, save/load, Auto classes, remote code, answering."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

import biomechgpt  # noqa: F401  (registers the Auto classes)
from biomechgpt.modeling.configuration_biomechgpt import BiomechGPTConfig
from biomechgpt.modeling.modeling_biomechgpt import BiomechGPTForCausalLM, init_new_token_embeddings
from test_train_helpers import CODEBOOK, make_tiny_model_and_processor

CODES_A = [1, 2, 3, 4, 5, 6, 1, 2]
CODES_B = [9, 10, 11, 12, 9, 10, 11, 12, 13, 14, 15]


@pytest.fixture(scope="module")
def model_and_processor():
    model, processor = make_tiny_model_and_processor()
    return model.eval(), processor


def test_config_validates_and_round_trips(tmp_path):
    from transformers import LlamaConfig

    text = LlamaConfig(vocab_size=116, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4)
    config = BiomechGPTConfig(text_config=text, codebook_size=16, motion_start_token_id=98, motion_end_token_id=99)
    assert config.motion_token_offset == 100 and list(config.motion_token_ids) == list(range(100, 116))
    with pytest.raises(ValueError, match="do not fit"):
        BiomechGPTConfig(text_config=text, codebook_size=200)
    with pytest.raises(ValueError, match="motion_end_token_id"):
        BiomechGPTConfig(text_config=text, codebook_size=16, motion_end_token_id=105)
    config.save_pretrained(tmp_path)
    loaded = BiomechGPTConfig.from_pretrained(tmp_path)
    assert type(loaded.text_config).__name__ == "LlamaConfig"
    assert (loaded.motion_token_offset, loaded.motion_end_token_id, loaded.vocab_size) == (100, 99, 116)


def test_vocabulary_extension_and_new_rows_at_embedding_scale(model_and_processor):
    model, processor = model_and_processor
    config = model.config
    tokenizer = processor.tokenizer
    assert config.vocab_size == config.motion_token_offset + CODEBOOK
    assert model.get_input_embeddings().weight.shape[0] == config.vocab_size
    assert tokenizer.convert_tokens_to_ids("<motion>") == config.motion_start_token_id < config.motion_token_offset
    weight = model.get_input_embeddings().weight.detach()
    text_rows, motion_rows = weight[: config.motion_start_token_id], weight[config.motion_token_offset:]
    # around the mean text embedding, at a comparable (not random-init or zero) scale, and all distinct
    assert (motion_rows.mean(0) - text_rows.mean(0)).abs().max() < 3 * text_rows.std(0).max()
    ratio = motion_rows.std() / text_rows.std()
    assert 0.2 < float(ratio) < 1.5
    assert torch.unique(motion_rows, dim=0).shape[0] == CODEBOOK


def test_codebook_initialisation_keeps_neighbours_close():
    weight = torch.randn(40, 16)
    codebook = torch.randn(8, 4)
    codebook[1] = codebook[0] + 0.01  # codes 0 and 1 are near twins, code 7 is far
    codebook[7] = -codebook[0] * 3
    init_new_token_embeddings(weight, range(32, 40), reference_rows=32, codebook=codebook,
                              codebook_rows=range(32, 40), generator=torch.Generator().manual_seed(0))
    near = torch.dist(weight[32], weight[33])
    far = torch.dist(weight[32], weight[39])
    assert near < 0.1 * far


@pytest.mark.parametrize("tie", [True, False])
def test_save_and_load_give_identical_weights(tmp_path, tie):
    model, _ = make_tiny_model_and_processor(tie=tie)
    model.save_pretrained(tmp_path)
    loaded = BiomechGPTForCausalLM.from_pretrained(tmp_path)
    original, reloaded = model.state_dict(), loaded.state_dict()
    assert original.keys() == reloaded.keys()
    for name in original:
        torch.testing.assert_close(original[name], reloaded[name], atol=0, rtol=0)
    assert (loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight) == tie
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "biomechgpt"
    assert saved["auto_map"]["AutoModelForCausalLM"] == "modeling_biomechgpt.BiomechGPTForCausalLM"
    assert (tmp_path / "modeling_biomechgpt.py").is_file() and (tmp_path / "configuration_biomechgpt.py").is_file()


def test_auto_classes_resolve_to_ours(model_and_processor):
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.for_model("biomechgpt", text_config=model_and_processor[0].config.text_config.to_dict(),
                                  codebook_size=CODEBOOK)
    assert isinstance(config, BiomechGPTConfig)
    assert isinstance(AutoModelForCausalLM.from_config(config), BiomechGPTForCausalLM)
    assert isinstance(AutoModel.from_config(config), BiomechGPTForCausalLM)


def test_forward_shapes_batch_equals_single_and_eval_is_deterministic(model_and_processor):
    model, processor = model_and_processor
    a = processor(CODES_A, "What is the cadence?")["input_ids"]
    b = processor(CODES_B, "Name the activity in this trial.")["input_ids"]
    ids = torch.full((2, max(a.shape[1], b.shape[1])), processor.pad_token_id)
    mask = torch.zeros_like(ids)
    for row, x in enumerate((a, b)):
        ids[row, : x.shape[1]], mask[row, : x.shape[1]] = x[0], 1
    with torch.no_grad():
        batch = model(input_ids=ids, attention_mask=mask).logits
        single = model(input_ids=a).logits
        again = model(input_ids=a).logits
    assert batch.shape == (2, ids.shape[1], model.config.vocab_size)
    torch.testing.assert_close(batch[0, : a.shape[1]], single[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(single, again, atol=0, rtol=0)


def _sequence_logprob(model, ids: list[int], start: int) -> float:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    return float(sum(logprobs[k - 1, ids[k]] for k in range(start, len(ids))))


def test_cached_candidate_ranking_equals_full_sequence_scoring(model_and_processor):
    model, processor = model_and_processor
    questions = ["What activity is the person performing?", "Name the activity in this trial."]
    # several motions of different lengths in one batch: exercises padding holes in the shared caches
    motions = [CODES_A, CODES_B, CODES_A, CODES_B]
    asked = [questions[0], questions[0], questions[1], questions[1]]
    answers = model.answer_batch(motions, asked, processor=processor)
    for motion, question, answer in zip(motions, asked, answers):
        prompt = processor.prefix_ids(motion) + processor.question_ids(question)
        scores = {}
        for label, ids in processor.candidate_ids("activity").items():
            scores[label] = _sequence_logprob(model, prompt + ids, len(prompt)) - processor.candidate_log_prior(
                "activity", label)
        probs = torch.softmax(torch.tensor(list(scores.values())), 0)
        best = max(scores, key=scores.get)
        assert answer.task == "activity" and answer.label == best
        assert answer.confidence == pytest.approx(float(probs.max()), abs=1e-5)
        assert answer.answer == processor.candidate_text("activity", best)


def test_generation_with_cache_equals_uncached_greedy(model_and_processor):
    model, processor = model_and_processor
    answers = model.answer_batch([CODES_A, CODES_B], ["What is the cadence?", "Describe this trial."],
                                 processor=processor, max_new_tokens=6)
    for motion, question, answer in zip([CODES_A, CODES_B], ["What is the cadence?", "Describe this trial."],
                                        answers):
        ids = processor.prefix_ids(motion) + processor.question_ids(question)
        out = []
        for _ in range(6):
            with torch.no_grad():
                token = int(model(input_ids=torch.tensor([ids + out])).logits[0, -1].argmax())
            if token in processor.stop_token_ids:
                break
            out.append(token)
        assert answer.answer == processor.decode(out).strip()
    assert answers[0].task == "cadence" and answers[1].task == "summary"
    assert answers[1].label is None and answers[1].confidence is None


class PrefixRuns:
    """Counts the motion prefixes the model really runs: input rows holding `<motion>` reach the embedding layer only
    when a prefix is computed (questions and answers after a cached prefix never contain it)."""

    def __init__(self, model):
        self.start_id = model.config.motion_start_token_id
        self.count = 0
        self.handle = model.get_input_embeddings().register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.count += int((args[0] == self.start_id).any(-1).sum())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _snapshot(prefix):
    return [(layer.keys.clone(), layer.values.clone()) for layer in prefix.cache.layers]


def test_answer_single_and_list_and_prefix_reuse(model_and_processor):
    model, processor = model_and_processor
    model.clear_answer_cache()
    with PrefixRuns(model) as runs:
        one = model.answer(CODES_A, "What is the cadence?", processor=processor, max_new_tokens=5)
        assert runs.count == 1
        # the next call about the same motion reuses the remembered prefix, for ranking and generation alike
        both = model.answer(CODES_A, ["What activity is the person performing?", "What is the cadence?"],
                            processor=processor, max_new_tokens=5)
        assert runs.count == 1
        model.answer(CODES_B, CLOSED_QUESTIONS[1], processor=processor)
        model.answer(CODES_A, CLOSED_QUESTIONS[1], processor=processor)  # only the last motion is kept
        assert runs.count == 3
    assert one.to_dict().keys() == {"question", "task", "answer", "label", "value", "unit", "confidence", "spread",
                                     "probabilities", "recordings", "warning"}
    assert one.warning is None  # motion codes: nothing to compare with the training data
    assert both[1] == one
    assert both[0].task == "activity" and both[0].label in ("walking", "running")
    with pytest.raises(ValueError, match="non-empty"):
        model.answer(CODES_A, " ", processor=processor)
    with pytest.raises(ValueError, match="not one this model was trained on"):
        model.answer(CODES_A, "What?", task="gait_speed", processor=processor)
    with pytest.raises(ValueError, match="batch_size"):
        model.answer_batch([CODES_A], ["What is the cadence?"], processor=processor, batch_size=0)


CLOSED_QUESTIONS = ["What activity is the person performing?", "Name the activity in this trial.",
                    "Which activity is shown in this recording?"]


def test_encoded_prefix_answers_like_a_fresh_motion_and_is_never_modified(model_and_processor):
    from transformers import DynamicCache

    from biomechgpt.modeling.modeling_biomechgpt import MotionPrefix

    model, processor = model_and_processor
    questions = CLOSED_QUESTIONS + ["What is the cadence?", "Describe this trial."]
    fresh = {}
    for codes in (CODES_A, CODES_B):
        model.clear_answer_cache()
        fresh[tuple(codes)] = [model.answer(codes, q, processor=processor, max_new_tokens=5) for q in questions]
        model.clear_answer_cache()  # nothing remembered between questions: each one runs its prefix
    with PrefixRuns(model) as runs:
        prefixes = {tuple(c): model.encode_prefix(c, processor=processor) for c in (CODES_A, CODES_B)}
        assert runs.count == 2
        before = {k: _snapshot(p) for k, p in prefixes.items()}
        # one session's questions interleaved with another's, then a batch mixing both prefixes and a plain motion
        for k in range(len(questions)):
            for codes, prefix in prefixes.items():
                got = model.answer(prefix, questions[k], processor=processor, max_new_tokens=5)
                want = fresh[codes][k]
                assert (got.task, got.label, got.answer) == (want.task, want.label, want.answer)
                if want.confidence is not None:
                    assert got.confidence == pytest.approx(want.confidence, abs=1e-5)
        assert runs.count == 2
        mixed = model.answer_batch([prefixes[tuple(CODES_B)], prefixes[tuple(CODES_A)], CODES_B],
                                   CLOSED_QUESTIONS, processor=processor)
        assert runs.count == 3  # only the plain motion ran its prefix
    expected = [fresh[tuple(CODES_B)][0], fresh[tuple(CODES_A)][1], fresh[tuple(CODES_B)][2]]
    for got, want in zip(mixed, expected):
        assert got.label == want.label and got.confidence == pytest.approx(want.confidence, abs=1e-5)
    for codes, prefix in prefixes.items():
        assert prefix.input_ids == tuple(processor.prefix_ids(list(codes))) and prefix.length == len(prefix.input_ids)
        for (keys, values), layer in zip(before[codes], prefix.cache.layers):
            torch.testing.assert_close(layer.keys, keys, atol=0, rtol=0)
            torch.testing.assert_close(layer.values, values, atol=0, rtol=0)
    assert model.encode_prefix(prefixes[tuple(CODES_A)]) is prefixes[tuple(CODES_A)]
    with pytest.raises(ValueError, match="prefix: a MotionPrefix from another model"):
        model.answer(MotionPrefix(prefixes[tuple(CODES_A)].input_ids, DynamicCache()), CLOSED_QUESTIONS[0],
                     processor=processor)


def test_cached_prefix_ranking_equals_full_sequence_scoring(model_and_processor):
    model, processor = model_and_processor
    prefix = model.encode_prefix(CODES_B, processor=processor)
    for question in CLOSED_QUESTIONS:
        answer = model.answer(prefix, question, processor=processor)
        assert answer.task == "activity"
        prompt = processor.prefix_ids(CODES_B) + processor.question_ids(question)
        scores = {label: _sequence_logprob(model, prompt + ids, len(prompt))
                  - processor.candidate_log_prior(answer.task, label)
                  for label, ids in processor.candidate_ids(answer.task).items()}
        probs = torch.softmax(torch.tensor(list(scores.values())), 0)
        assert answer.label == max(scores, key=scores.get)
        assert answer.confidence == pytest.approx(float(probs.max()), abs=1e-5)


REMOTE_SCRIPT = textwrap.dedent("""
    import sys, json
    sys.modules["biomechgpt"] = None  # the package is not importable: everything must come from the folder
    try:
        import biomechgpt
    except ImportError:
        pass
    else:
        raise SystemExit("biomechgpt should not be importable here")
    import torch
    from transformers import AutoModelForCausalLM, AutoProcessor
    folder = sys.argv[1]
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    ids = processor([1, 2, 3, 4, 5, 6, 1, 2], "What is the cadence?")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    answer = model.answer([1, 2, 3, 4, 5, 6, 1, 2], "What activity is the person performing?")
    torch.save({"ids": ids, "logits": logits}, sys.argv[2])
    print(json.dumps({"model": type(model).__module__, "processor": type(processor).__module__,
                      "label": answer.label, "confidence": answer.confidence}))
""")


def test_remote_code_loads_without_the_package(tmp_path, model_and_processor):
    model, processor = model_and_processor
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_SCRIPT)
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(script), str(folder), str(tmp_path / "out.pt")], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert not info["model"].startswith("biomechgpt") and not info["processor"].startswith("biomechgpt")
    remote = torch.load(tmp_path / "out.pt", weights_only=True)
    ids = processor(CODES_A, "What is the cadence?")["input_ids"]
    torch.testing.assert_close(remote["ids"], ids, atol=0, rtol=0)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    torch.testing.assert_close(remote["logits"], logits, atol=0, rtol=0)
    local = model.answer(CODES_A, "What activity is the person performing?", processor=processor)
    assert info["label"] == local.label and info["confidence"] == pytest.approx(local.confidence, abs=1e-6)


def test_candidates_with_shared_opening_words_rank_as_if_scored_whole(monkeypatch):
    """Opening words every candidate shares are computed once with the question; labels and confidences stay those
    of scoring each whole candidate."""
    import biomechgpt.modeling.answering_biomechgpt as modeling

    model, processor = make_tiny_model_and_processor()
    processor.answer_candidates = {"activity": {"walking": "Activity: a walk.", "running": "Activity: a run."}}
    processor._candidate_cache = {}
    assert modeling._shared_prefix_length(list(processor.candidate_ids("activity").values())) > 0
    assert modeling._shared_prefix_length([[1, 2, 3], [1, 2]]) == 1  # every candidate keeps a token of its own
    codes = [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8]]
    questions = ["What activity is this?", "Which movement is the person doing?"]
    shared = model.answer_batch(codes, questions, processor=processor, tasks=["activity"] * 2)
    monkeypatch.setattr(modeling, "_shared_prefix_length", lambda sequences: 0)
    whole = model.answer_batch(codes, questions, processor=processor, tasks=["activity"] * 2)
    for a, b in zip(shared, whole):
        assert a.label == b.label and a.confidence == pytest.approx(b.confidence, abs=1e-5)


NUMERIC_WORDINGS = [
    {"template": "The cadence is about {} steps/min.", "decimals": 0, "low": 95, "high": 125, "step": 1, "scale": 1.0},
    # a second unit (steps per second) with its own wording: its values count in steps/min through `scale`
    {"template": "About {} steps per second.", "decimals": 1, "low": 1.5, "high": 2.2, "step": 0.1, "scale": 60.0},
]


def test_graded_numeric_answer_is_the_mean_of_whole_sentence_scores(model_and_processor):
    """The trie scores every value exactly as scoring its answer sentence alone would (up to the first word after
    the number), and the answer is the probability-weighted mean over both wordings."""
    from biomechgpt.processing.processing_biomechgpt import BiomechGPTProcessor

    model, processor = model_and_processor
    graded = BiomechGPTProcessor(processor.tokenizer, motion_token_offset=processor.motion_token_offset,
                                 codebook_size=CODEBOOK, task_kinds=processor.task_kinds,
                                 answer_candidates=processor.answer_candidates, task_units=processor.task_units,
                                 task_questions=processor.task_questions,
                                 numeric_answers={"cadence": NUMERIC_WORDINGS})
    values, sequences = graded.numeric_candidates("cadence")
    assert len(values) == 31 + 8 and values[0] == 95 and values[31] == pytest.approx(90.0)
    # cut one token after the number: "12" then " steps" is not the start of "120"
    assert all(len(seq) < len(graded.answer_ids(graded.numeric_text("cadence", 100))) for seq in sequences[:31])
    motions = [CODES_A, CODES_B, CODES_A]
    asked = ["What is the cadence?", "How many steps per minute?", "How many steps per minute?"]
    answers = model.answer_batch(motions, asked, processor=graded)
    for motion, question, answer in zip(motions, asked, answers):
        prompt = graded.prefix_ids(motion) + graded.question_ids(question)
        scores = torch.tensor([_sequence_logprob(model, prompt + seq, len(prompt)) for seq in sequences],
                              dtype=torch.float64)
        probs = torch.softmax(scores, 0)
        mean = float((probs * torch.tensor(values, dtype=torch.float64)).sum())
        spread = float((probs * (torch.tensor(values, dtype=torch.float64) - mean) ** 2).sum().sqrt())
        assert answer.task == "cadence" and answer.unit == "steps/min"
        assert answer.value == round(mean) and answer.spread == pytest.approx(spread, abs=1e-3)
        assert answer.answer == f"The cadence is about {round(mean)} steps/min."
    # one pass per question or several: the same answers
    split = [model.answer_batch([m], [q], processor=graded)[0] for m, q in zip(motions, asked)]
    assert [a.spread for a in split] == pytest.approx([a.spread for a in answers], abs=1e-5)


def test_trie_layout_shares_leading_tokens_and_sees_only_ancestors():
    from biomechgpt.modeling.answering_biomechgpt import _trie_layout

    ids, (predecessors, targets, owners), visible, depth = _trie_layout([50, 51], [[7, 8, 9], [7, 8, 10], [7, 11]])
    # question 50 51, then 7 (shared by all), 8 (shared by the first two); last tokens are targets only
    assert ids == [50, 51, 7, 8]
    assert depth == [0, 1, 2, 3]
    assert targets == [7, 8, 9, 7, 8, 10, 7, 11] and owners == [0, 0, 0, 1, 1, 1, 2, 2]
    assert predecessors == [1, 2, 3, 1, 2, 3, 1, 2]
    assert visible.tolist() == [[True, False, False, False], [True, True, False, False],
                                [True, True, True, False], [True, True, True, True]]
    ids, _, visible, depth = _trie_layout([50], [[7, 8, 1], [9, 8, 1]])
    assert ids == [50, 7, 8, 9, 8] and depth == [0, 1, 2, 1, 2]
    assert visible[4].tolist() == [True, False, False, True, True]  # the second "8" sees its own branch only


def test_generation_never_emits_motion_or_marker_tokens(tmp_path):
    """Even when every motion row outscores the text rows (a tied head whose new rows point along the hidden
    states), answers and `model.generate` decode text only, also after save/load."""
    model, processor = make_tiny_model_and_processor(tie=True)
    model.eval()
    banned = model.non_text_token_ids
    assert model.config.motion_end_token_id in banned and list(model.config.motion_token_ids)[0] in banned
    ids = processor(CODES_A, "What is the cadence?")["input_ids"]
    with torch.no_grad():
        hidden = model.language_model.get_decoder()(input_ids=ids).last_hidden_state[0, -1]
        model.get_input_embeddings().weight[banned] = hidden * 50.0  # tied: these are output rows too
        assert int(model(input_ids=ids).logits[0, -1].argmax()) in banned  # the trap is set
    model.save_pretrained(tmp_path)
    loaded = BiomechGPTForCausalLM.from_pretrained(tmp_path).eval()
    assert sorted(loaded.generation_config.suppress_tokens) == banned
    generated = loaded.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
    assert not set(generated[0, ids.shape[1]:].tolist()) & set(banned)
    model.processor = processor
    with torch.no_grad():
        prefix = model.encode_prefix(CODES_A)
    tokens = []
    original = model._text_only

    def spy(logits):
        out = original(logits)
        tokens.extend(out.argmax(-1).reshape(-1).tolist())
        return out

    model._text_only = spy
    model.answer(prefix, "What is the cadence?", max_new_tokens=6)
    assert tokens and not set(tokens) & set(banned)



# ------------------------------------------------------------------------------------------------------------------
# out-of-distribution warning


def calibrated_motion_tokenizer():
    """The test MotionTokenizer with out-of-distribution limits set from small random motions (as training does from
    its validation trials)."""
    from biomechgpt.training.motion_tokenizer import reconstruction_error_limits
    from test_train_helpers import make_motion, make_motion_tokenizer

    tokenizer = make_motion_tokenizer()
    motions = [make_motion(frames=120, seed=seed) for seed in range(10)]
    tokenizer.config.reconstruction_error_limits = reconstruction_error_limits(tokenizer, motions)
    return tokenizer


def with_bent_elbows(motion, degrees: float = 120.0):
    """The motion with both elbows held at `degrees` of flexion (far outside the training motions)."""
    import numpy as np

    from biomechgpt import Motion

    values = motion.values.copy()
    for name in ("elbow_flex_r", "elbow_flex_l"):
        values[:, motion.coordinates.index(name)] = np.radians(degrees)
    return Motion(list(motion.coordinates), values, motion.frame_rate, motion.mask.copy(), dict(motion.meta))


@pytest.mark.parametrize("motion_input", ["codes", "continuous"])
def test_answers_about_a_recording_unlike_the_training_data_carry_a_warning(motion_input):
    from test_train_helpers import make_motion

    model, processor = make_tiny_model_and_processor(motion_input=motion_input)
    model.eval()
    processor.motion_tokenizer = calibrated_motion_tokenizer()
    usual, unusual = make_motion(frames=120), with_bent_elbows(make_motion(frames=120))
    question = "What activity is the person performing?"
    assert model.answer(usual, question, processor=processor).warning is None
    flagged = model.answer(unusual, [question, "What is the cadence?"], processor=processor, max_new_tokens=3)
    warning = flagged[0].warning
    assert warning.startswith("This recording is unlike the training data in its arm angles") and "leg" not in warning
    assert flagged[1].warning == warning and flagged[0].to_dict()["warning"] == warning
    # the warning is computed with the prefix and kept with it
    prefix = model.encode_prefix(unusual, processor=processor)
    assert prefix.warning == warning and model.answer(prefix, question, processor=processor).warning == warning
    # several recordings of one person: the unusual one is named
    joint = model.answer_participant([usual, unusual], question, processor=processor)
    assert joint.warning == f"recording 2 of 2: {warning}"
    # answer_batch checks only when asked to (scoring a test split pays nothing for it)
    assert model.answer_batch([unusual], [question], processor=processor)[0].warning is None
    assert model.answer_batch([unusual], [question], processor=processor, check_motions=True)[0].warning == warning
    assert model.answer_batch([prefix], [question], processor=processor)[0].warning == warning
    # a MotionTokenizer saved before the check (no limits) answers as before, without a warning
    processor.motion_tokenizer.config.reconstruction_error_limits = None
    assert model.answer(unusual, question, processor=processor).warning is None
