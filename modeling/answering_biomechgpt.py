"""How a BiomechGPT answers: the answering engine behind `model.answer`, beside the file that defines the network.

Closed-set questions rank their candidate answers by likelihood in one batched pass, numeric questions answer with
the mean of the model's belief over a grid of values (scored as a trie), free questions decode greedily. A model whose
motion encoder has calibrated readout heads weighs their reading into both beliefs (`config.readout_answer_weight`).
The KV cache of a motion's prefix (the tokens up to `</motion>`) is computed once and shared by every question about
that motion: within a call, with the previous call (the model remembers the last motion's prefix), and explicitly
across calls with `prefix = model.encode_prefix(motion)`, then `model.answer(prefix, question)` (one per chat session).

`BiomechGPTAnsweringMixin` holds it; `BiomechGPTForCausalLM` inherits it, so `model.answer(...)` stays the public
entry. The mixin reads the model through its public parts only: `config`, `device`, `language_model`, the motion
encoder and `embed_inputs`, and the processor through the methods it documents.

This file imports only numpy, torch and transformers so it can be uploaded to the Hub as remote code next to
`modeling_biomechgpt.py`, which imports it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["BiomechGPTAnswer", "BiomechGPTAnsweringMixin", "MotionPrefix"]

@dataclass
class BiomechGPTAnswer:
    """One answered question.

    Args:
        question (`str`): the question as asked.
        task (`str` or `None`): the task the question was routed to (e.g. `"activity"`, `"cadence"`), `None` when no
            task matched and the answer is free text.
        answer (`str`): the answer sentence.
        label (`str` or `None`): the predicted class for closed-set tasks.
        value (`float` or `None`): the predicted number for numeric tasks: the mean of the model's distribution over
            the task's values, or the number in the generated sentence for a task without a value grid.
        unit (`str` or `None`): the unit of `value`.
        confidence (`float` or `None`): the probability of `label` among the task's candidate answers.
        spread (`float` or `None`): for numeric answers from a value grid, the standard deviation of the model's
            distribution over the values (same unit as `value`): how sure the model is.
        probabilities (`dict[str, float]` or `None`): for closed-set answers, the probability of every label.
        recordings (`int`, defaults to 1): how many recordings the answer was drawn from (see
            [`~BiomechGPTForCausalLM.answer_participant`]).
        warning (`str` or `None`): one sentence when the recording is unlike the training data (its MotionTokenizer
            cannot reproduce some angle group, see `MotionTokenizer.check_motion`), so the answer may be unreliable;
            `None` otherwise, for motion codes, and for a MotionTokenizer saved without the check's limits.
    """

    question: str
    task: str | None
    answer: str
    label: str | None = None
    value: float | None = None
    unit: str | None = None
    confidence: float | None = None
    spread: float | None = None
    probabilities: dict[str, float] | None = None
    recordings: int = 1
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class MotionPrefix:
    """A motion's prompt prefix and its KV cache, made by [`BiomechGPTForCausalLM.encode_prefix`].

    Pass it wherever a motion is expected (`model.answer(prefix, question)`, `model.answer_batch([prefix, ...],
    ...)`) to answer without running the prefix again. The model never modifies it (each forward pass runs on a
    shallow copy of the cache whose layers grow by concatenation into new tensors), so one prefix answers any number
    of questions, in any order, interleaved with other prefixes. It belongs to the weights it was computed with: make
    a new one after changing them.

    Args:
        input_ids (`tuple[int]`): the prefix's token ids, up to and including `</motion>`.
        cache (`transformers.Cache`): the wrapped model's KV cache of `input_ids`, batch size 1.
        fingerprint (`str`, *optional*): a digest of the motion's feature frames, for models that read them (their
            prefix ids are the same for every motion of a length).
        warning (`str`, *optional*): the out-of-distribution warning of the motion (see [`BiomechGPTAnswer`]),
            given to every answer about it.
        readout (`dict[str, torch.Tensor]`, *optional*): for a model with readout heads, each head's output for the
            motion (class logits, or a standardised value), which answers weigh with `config.readout_answer_weight`.
    """

    input_ids: tuple[int, ...]
    cache: Any = field(repr=False)
    fingerprint: str | None = None
    warning: str | None = None
    readout: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple:
        """What identifies the motion the prefix was computed from."""
        return self.input_ids, self.fingerprint

    @property
    def length(self) -> int:
        """Number of prefix tokens (the position of the first question token)."""
        return len(self.input_ids)


class BiomechGPTAnsweringMixin:
    """`answer`, `answer_batch`, `answer_participant` and `encode_prefix` for [`BiomechGPTForCausalLM`] (see the
    module's docstring). The model's `__init__` sets `_processor` and `_prefix_memo` to `None`."""

    @property
    def processor(self) -> Any:
        """The [`BiomechGPTProcessor`] saved with this model (loaded from the model's folder on first use)."""
        if self._processor is None:
            from transformers import AutoProcessor

            source = self.config.name_or_path
            if not source:
                raise ValueError("this model has no folder to load its processor from; pass processor=... or set "
                                 "model.processor")
            # Loaded as Hub remote code (the biomechgpt package absent): the processor's code is in the folder too.
            remote = type(self).__module__.startswith("transformers_modules")
            self._processor = AutoProcessor.from_pretrained(source, trust_remote_code=True if remote else None)
        return self._processor

    @processor.setter
    def processor(self, value: Any) -> None:
        self._processor = value

    @torch.no_grad()
    def encode_prefix(self, motion: Any, *, processor: Any = None) -> MotionPrefix:
        """Run a motion's prefix once, to answer many questions about it without running it again.

        Args:
            motion (`Motion`, path, or motion codes): the movement; codes are a list of ints or a 1-D tensor.
            processor ([`BiomechGPTProcessor`], *optional*): defaults to the one saved with the model.

        Returns:
            [`MotionPrefix`]: pass it to [`~BiomechGPTForCausalLM.answer`] or `answer_batch` in place of the motion.

        Example:

        ```python
        >>> prefix = model.encode_prefix(motion)
        >>> model.answer(prefix, "What activity is the person performing?").label
        'walking'
        >>> model.answer(prefix, "Is this movement impaired?").label  # the prefix is not run again
        'unimpaired'
        ```
        """
        if isinstance(motion, MotionPrefix):
            return motion
        processor = processor if processor is not None else self.processor
        return self._compute_prefixes([self._prefix_request(processor, motion, check=True)], processor)[0]

    def answer(
        self,
        motion: Any,
        question: str | Sequence[str],
        *,
        task: str | Sequence[str | None] | None = None,
        processor: Any = None,
        max_new_tokens: int = 48,
    ) -> BiomechGPTAnswer | list[BiomechGPTAnswer]:
        """Answer one or several questions about one motion.

        Args:
            motion (`Motion`, path, motion codes, or [`MotionPrefix`]): the movement; codes are a list of ints or a
                1-D tensor; a prefix from [`~BiomechGPTForCausalLM.encode_prefix`] skips running the motion again.
            question (`str` or `list[str]`): the question(s).
            task (`str` or `list`, *optional*): the task of each question; detected from the wording when omitted.
            processor ([`BiomechGPTProcessor`], *optional*): defaults to the one saved with the model.
            max_new_tokens (`int`, *optional*, defaults to 48): limit for generated (numeric and free) answers.

        Returns:
            [`BiomechGPTAnswer`] for one question, a list for several.
        """
        single = isinstance(question, str)
        questions = [question] if single else list(question)
        tasks = task if isinstance(task, (list, tuple)) else [task] * len(questions)
        answers = self.answer_batch([motion] * len(questions), questions, tasks=tasks, processor=processor,
                                    check_motions=True, max_new_tokens=max_new_tokens)
        return answers[0] if single else answers

    @torch.no_grad()
    def answer_participant(
        self,
        motions: Sequence[Any],
        question: str | Sequence[str],
        *,
        task: str | Sequence[str | None] | None = None,
        processor: Any = None,
    ) -> BiomechGPTAnswer | list[BiomechGPTAnswer]:
        """Answer participant-level questions (impairment, side, diagnosis, device, falls) from several recordings
        of one person.

        Each recording is answered on its own and the label probabilities are averaged over the recordings: a
        diagnosis that shows in some trials more than in others is judged on all of them.

        Args:
            motions (`list`): the person's recordings (`Motion`, path, codes or [`MotionPrefix`] each).
            question (`str` or `list[str]`): the question(s); each must be about a closed-set task.
            task (`str` or `list`, *optional*): the task of each question; detected from the wording when omitted.
            processor ([`BiomechGPTProcessor`], *optional*): defaults to the one saved with the model.

        Returns:
            [`BiomechGPTAnswer`] (with `recordings` set) for one question, a list for several.
        """
        processor = processor if processor is not None else self.processor
        motions = list(motions)
        if not motions:
            raise ValueError("motions: give at least one recording")
        single = isinstance(question, str)
        questions = [question] if single else list(question)
        tasks = list(task) if isinstance(task, (list, tuple)) else [task] * len(questions)
        if len(tasks) != len(questions):
            raise ValueError(f"got {len(tasks)} tasks for {len(questions)} questions")
        tasks = [t if t is not None else processor.detect_task(q) for q, t in zip(questions, tasks)]
        for q, t in zip(questions, tasks):
            if processor.task_kinds.get(t) != "closed":
                raise ValueError(f"question {q!r}: routed to {t!r}, not a closed-set task; participant-level answers "
                                 "are for impairment, side, diagnosis, device and falls (ask about one recording)")
        flat = self.answer_batch([m for m in motions for _ in questions], questions * len(motions),
                                 tasks=tasks * len(motions), processor=processor, check_motions=True)
        # the recordings unlike the training data, named by their file when they have one
        warnings = []
        for r, motion in enumerate(motions):
            text = flat[r * len(questions)].warning
            if text:
                source = motion.meta.get("source") if isinstance(getattr(motion, "meta", None), dict) else motion
                name = os.path.basename(source) if isinstance(source, (str, os.PathLike)) else None
                warnings.append(f"{name or f'recording {r + 1} of {len(motions)}'}: {text}")
        out = []
        for k, (q, t) in enumerate(zip(questions, tasks)):
            per_recording = flat[k::len(questions)]
            labels = list(per_recording[0].probabilities)
            mean = {label: sum(a.probabilities[label] for a in per_recording) / len(per_recording) for label in labels}
            label = max(labels, key=lambda x: mean[x])
            out.append(BiomechGPTAnswer(question=q, task=t, answer=processor.candidate_text(t, label), label=label,
                                        confidence=mean[label], probabilities=mean, recordings=len(motions),
                                        warning=" ".join(warnings) or None))
        return out[0] if single else out

    @torch.no_grad()
    def answer_batch(
        self,
        motions: Sequence[Any],
        questions: Sequence[str],
        *,
        tasks: Sequence[str | None] | None = None,
        processor: Any = None,
        max_new_tokens: int = 48,
        batch_size: int = 64,
        check_motions: bool = False,
    ) -> list[BiomechGPTAnswer]:
        """Answer `questions[i]` about `motions[i]` for every `i`, batched.

        Questions about the same motion (the same object, path, codes or [`MotionPrefix`]) share one prefix KV cache;
        a motion's prefix is run once per call, not at all for a `MotionPrefix`, and not for the motion of the
        previous call (the model keeps its prefix). Closed-set questions score every candidate answer of their task
        in one forward pass over the prefix caches; the confidence is the softmax of the candidates' total
        log-likelihoods. Numeric questions of tasks with a value grid (`processor.numeric_answers`) score every value
        in one pass too and answer with the mean and spread of that belief; other numeric and free questions decode
        greedily together. A model with calibrated readout heads and `config.readout_answer_weight > 0` multiplies
        both beliefs by its heads' (see [`BiomechGPTConfig`]).

        Args:
            motions (`list`): one motion per question (`Motion`, path, codes or [`MotionPrefix`]); repeat an object to
                share it.
            questions (`list[str]`): the questions.
            tasks (`list`, *optional*): the task of each question (`None` entries are detected from the wording).
            processor ([`BiomechGPTProcessor`], *optional*): defaults to the one saved with the model.
            max_new_tokens (`int`, *optional*, defaults to 48): limit for generated answers.
            batch_size (`int`, *optional*, defaults to 64): questions per forward pass.
            check_motions (`bool`, *optional*, defaults to `False`): compare each motion with the training data (one
                MotionTokenizer pass per motion) and set the answers' `warning`; `answer`, `answer_participant` and
                `encode_prefix` do. Off here so that scoring a test split costs nothing extra; a [`MotionPrefix`]
                brings its own warning either way.

        Returns:
            `list[BiomechGPTAnswer]`, in the order of `questions`.
        """
        processor = processor if processor is not None else self.processor
        if len(motions) != len(questions):
            raise ValueError(f"got {len(motions)} motions for {len(questions)} questions")
        tasks = list(tasks) if tasks is not None else [None] * len(questions)
        if len(tasks) != len(questions):
            raise ValueError(f"got {len(tasks)} tasks for {len(questions)} questions")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
        for q in questions:
            if not isinstance(q, str) or not q.strip():
                raise ValueError("question: must be a non-empty string")
        tasks = [t if t is not None else processor.detect_task(q) for q, t in zip(questions, tasks)]
        for t in tasks:
            if t is not None and t not in processor.task_kinds:
                raise ValueError(f"task {t!r} is not one this model was trained on ({sorted(processor.task_kinds)})")

        # Motions are tokenized once each; identical objects or identical codes share a prefix. A motion is its
        # MotionPrefix when it has one, else its prefix token ids (run below, once, when its first chunk comes).
        slot_of: dict[Any, int] = {}
        slots: list[MotionPrefix | _PrefixRequest] = []
        motion_index = []
        for motion in motions:
            if isinstance(motion, MotionPrefix):
                self._check_prefix(motion)
                key: Any = ("prefix", id(motion))
            elif isinstance(motion, (str, list, tuple)):
                key = motion if isinstance(motion, str) else tuple(int(c) for c in motion)
            else:
                key = id(motion)
            if key not in slot_of:
                slot_of[key] = len(slots)
                slots.append(motion if isinstance(motion, MotionPrefix) else
                             self._prefix_request(processor, motion, check=check_motions))
            motion_index.append(slot_of[key])

        was_training = self.training
        if was_training:  # weights may have changed since the last cached prefix
            self.clear_answer_cache()
        self.eval()
        results: list[BiomechGPTAnswer | None] = [None] * len(questions)
        try:
            order = sorted(range(len(questions)), key=lambda i: motion_index[i])  # keep a motion's questions together
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                chunk_slots = list(dict.fromkeys(motion_index[i] for i in chunk))
                memo, missing = self._prefix_memo, []
                for s in chunk_slots:
                    if memo is not None and not isinstance(slots[s], MotionPrefix) and slots[s].key == memo.key:
                        # same prefix tokens; the warning is this motion's own (two recordings can share codes)
                        slots[s] = replace(memo, warning=slots[s].warning)
                    elif not isinstance(slots[s], MotionPrefix):
                        missing.append(s)
                for s, prefix in zip(missing, self._compute_prefixes([slots[s] for s in missing], processor)):
                    slots[s] = prefix
                for i, result in zip(chunk, self._answer_chunk(
                        processor, [slots[motion_index[i]] for i in chunk], [questions[i] for i in chunk],
                        [tasks[i] for i in chunk], max_new_tokens)):
                    result.warning = getattr(slots[motion_index[i]], "warning", None)
                    results[i] = result
                # The last motion of a chunk may go on in the next chunk or the next call (chat, ask): remember it.
                last = chunk_slots[-1]
                if not was_training and not isinstance(motions[chunk[-1]], MotionPrefix):
                    self._prefix_memo = slots[last]  # type: ignore[assignment]
                for s in chunk_slots[:-1]:  # sorted by motion: these never come back; drop our reference to them
                    slots[s] = None  # type: ignore[call-overload]
        finally:
            self.train(was_training)
        return results  # type: ignore[return-value]

    def clear_answer_cache(self) -> None:
        """Forget the remembered prefix of the last motion (call after changing the weights outside of training).

        [`MotionPrefix`] objects from `encode_prefix` are the caller's: make new ones after changing the weights."""
        self._prefix_memo = None

    def _check_prefix(self, prefix: MotionPrefix) -> None:
        layers = getattr(prefix.cache, "layers", None)
        expected = getattr(self.config.get_text_config(decoder=True), "num_hidden_layers", None)
        if layers is None or not prefix.input_ids or (expected is not None and len(layers) != expected):
            raise ValueError(f"prefix: a MotionPrefix from another model ({len(layers or [])} cache layers, this "
                             f"model has {expected})")

    def _prefix_request(self, processor: Any, motion: Any, check: bool = False) -> _PrefixRequest:
        """What computing a motion's prefix needs: its token ids, for a model that reads feature frames those, and
        with `check` the motion's out-of-distribution warning (a processor saved before the check has no
        `motion_warning`)."""
        check = getattr(processor, "motion_warning", None) if check else None
        if self.config.reads_features:
            inputs = processor.motion_inputs(motion)
            codes = processor.encode_motion(inputs["motion"]) if self.config.reads_codes else []
            warning = check(inputs["motion"]) if check is not None else None
            return _PrefixRequest(tuple(processor.prefix_ids(codes)), inputs, inputs["fingerprint"], warning)
        if check is None:
            return _PrefixRequest(tuple(processor.prefix_ids(processor.encode_motion(motion))))
        if isinstance(motion, (str, os.PathLike)) and getattr(processor, "motion_tokenizer", None) is not None:
            motion = processor.feature_extractor.as_motion(motion)  # read the file once, for the codes and the check
        warning = check(motion)
        return _PrefixRequest(tuple(processor.prefix_ids(processor.encode_motion(motion))), warning=warning)

    @torch.no_grad()
    def _compute_prefixes(self, requests: list[_PrefixRequest], processor: Any) -> list[MotionPrefix]:
        """Run the prefixes in one batched pass and split the cache into one compact `MotionPrefix` per motion."""
        if not requests:
            return []
        prefix_ids = [r.input_ids for r in requests]
        was_training = self.training
        self.eval()
        try:
            ids, mask = _right_pad(prefix_ids, processor.pad_token_id, self.device)
            embeds, outputs = None, []
            if self.config.reads_features:
                batch = processor.collate_motion_inputs([r.motion_inputs for r in requests])
                features, outputs = self.motion_encoder(**{k: v.to(self.device) for k, v in batch.items()},
                                                        return_readout=True)
                embeds = self.embed_inputs(ids, motion_features=features)
            cache = self._extend(None, ids, mask, mask.sum(1) * 0, logits=False, inputs_embeds=embeds)[1]
        finally:
            self.train(was_training)
        prefixes = []
        for row, (row_ids, request) in enumerate(zip(prefix_ids, requests)):
            own = copy.copy(cache)
            own.layers = []
            for layer in cache.layers:
                new = copy.copy(layer)
                if _has_keys(layer):
                    keys = layer.keys[row:row + 1, :, :len(row_ids)]
                    values = layer.values[row:row + 1, :, :len(row_ids)]
                    # a slice of a larger batch would keep the whole batch alive: copy it out
                    new.keys, new.values = (keys.clone(), values.clone()) if len(prefix_ids) > 1 else (keys, values)
                own.layers.append(new)
            readout = ({task: output[row].detach().float() for task, output in
                        zip(self.config.motion_readout_tasks, outputs)} if outputs else None)
            prefixes.append(MotionPrefix(tuple(row_ids), own, request.fingerprint, request.warning, readout))
        return prefixes

    def _readout_label_logprobs(self, prefix: MotionPrefix, task: str | None, labels: list[str]
                                ) -> torch.Tensor | None:
        """`readout_answer_weight` times the log-probability of each of `labels` under `task`'s readout head; `None`
        when the heads do not count or do not know exactly these labels."""
        calibration = self._readout_calibration(prefix, task)
        if calibration is None or sorted(calibration[0]) != sorted(labels):
            return None
        logprobs = torch.log_softmax(prefix.readout[task], -1)  # type: ignore[index]
        return self.config.readout_answer_weight * logprobs[[calibration[0].index(label) for label in labels]]

    def _readout_value_logprobs(self, prefix: MotionPrefix, task: str | None, values: torch.Tensor
                                ) -> torch.Tensor | None:
        """`readout_answer_weight` times the log-density of each of `values` (the task's unit) under a normal
        distribution at the readout head's value with its validation error as the spread; `None` when the heads do
        not count for `task`."""
        calibration = self._readout_calibration(prefix, task)
        if calibration is None or len(calibration[1]) != 3:
            return None
        mean, std, error = calibration[1]
        centre = float(prefix.readout[task][0]) * std + mean  # type: ignore[index]
        return -self.config.readout_answer_weight * (values - centre) ** 2 / (2 * error ** 2)

    def _readout_calibration(self, prefix: MotionPrefix, task: str | None) -> tuple[list[str], list[float]] | None:
        config = self.config
        if (config.readout_answer_weight <= 0 or prefix.readout is None or task not in prefix.readout
                or not config.motion_readout_labels or not config.motion_readout_scales):
            return None
        k = config.motion_readout_tasks.index(task)
        return config.motion_readout_labels[k], config.motion_readout_scales[k]

    def _answer_chunk(self, processor: Any, prefixes: list[MotionPrefix], questions: list[str],
                      tasks: list[str | None], max_new_tokens: int) -> list[BiomechGPTAnswer]:
        answers: list[BiomechGPTAnswer | None] = [None] * len(questions)
        kinds = [processor.task_kinds.get(t) if t is not None else "free" for t in tasks]
        closed = [i for i, k in enumerate(kinds) if k == "closed"]
        graded = [i for i, k in enumerate(kinds) if k == "numeric" and tasks[i] in processor.numeric_answers]
        generated = [i for i, k in enumerate(kinds) if k != "closed" and i not in graded]
        if closed:
            self._rank_candidates(processor, closed, prefixes, questions, tasks, answers)
        if graded:
            self._grade_values(processor, graded, prefixes, questions, tasks, answers)
        if generated:
            self._generate(processor, generated, prefixes, questions, tasks, max_new_tokens, answers)
        return answers  # type: ignore[return-value]

    def _rank_candidates(self, processor: Any, items: list[int], prefixes: list[MotionPrefix], questions: list[str],
                         tasks: list[str | None], answers: list) -> None:
        """Score every candidate answer of every closed-set question in one forward pass after the prefix caches.

        Each motion becomes one row laid out as a tree after its cached prefix: each question branches off the prefix,
        each candidate answer branches off its question. A 4-D attention mask lets a token see the prefix and its own
        ancestors in the tree, and position ids continue from the prefix along each branch, so every candidate is
        scored exactly as if it followed its prefix and question alone, while each question is computed once. Rows of
        motions with shorter prefixes mask the padding holes of the stacked cache. A candidate's last token is only a
        target, never an input: its output would predict past the answer."""
        device = self.device
        rows: dict[int, list[int]] = {}
        row_prefixes: list[MotionPrefix] = []
        for i in items:
            if id(prefixes[i]) not in rows:
                rows[id(prefixes[i])] = []
                row_prefixes.append(prefixes[i])
            rows[id(prefixes[i])].append(i)
        sequences, branches, parents, offsets = [], [], [], []
        scored = []  # (row, predecessor index in the tree, target id, candidate number)
        owners, labels = [], []
        for row, row_items in enumerate(rows.values()):
            ids, branch, parent, offset = [], [], [], []  # a branch is named by the index of its first token
            for i in row_items:
                candidates = processor.candidate_ids(tasks[i])
                # Words every candidate starts with ("Activity: ...") join the question's branch: computed once, and
                # not scored, since they add the same log-probability to every candidate of the softmax.
                shared = _shared_prefix_length(list(candidates.values()))
                q_ids = processor.question_ids(questions[i]) + list(next(iter(candidates.values()))[:shared])
                q_branch = len(ids)
                ids += q_ids
                branch += [q_branch] * len(q_ids)
                parent += [-1] * len(q_ids)  # the root: the prefix, in the cache and visible to every token
                offset += range(len(q_ids))
                q_last = len(ids) - 1
                for label, c_ids in candidates.items():
                    c_ids = c_ids[shared:]
                    c_start = len(ids)
                    inputs = c_ids[:-1]
                    ids += inputs
                    branch += [c_start] * len(inputs)
                    parent += [q_branch] * len(inputs)
                    offset += range(len(q_ids), len(q_ids) + len(inputs))
                    for k, target in enumerate(c_ids):
                        scored.append((row, q_last if k == 0 else c_start + k - 1, target, len(owners)))
                    owners.append(i)
                    labels.append(label)
            sequences.append(ids)
            branches.append(branch)
            parents.append(parent)
            offsets.append(offset)
        cache, prefix_mask = _stack_prefixes(row_prefixes, device)  # prefix_mask: (rows, prefix keys)
        input_ids = _right_pad(sequences, processor.pad_token_id, device)[0]
        length = input_ids.shape[1]
        branch = _right_pad(branches, -2, device)[0]  # padding is its own branch: it sees only other padding
        parent = _right_pad(parents, -3, device)[0]
        position_ids = prefix_mask.sum(1, keepdim=True) + _right_pad(offsets, 0, device)[0]
        seen_branch = branch[:, None, :]  # (rows, 1, keys)
        visible = (seen_branch == branch[:, :, None]) | (seen_branch == parent[:, :, None])  # (rows, queries, keys)
        visible &= torch.ones(length, length, dtype=torch.bool, device=device).tril()[None]
        hidden = self._tree_pass(cache, prefix_mask, input_ids, visible, position_ids)
        row_index, predecessor, target, candidate = (torch.tensor(col, device=device) for col in zip(*scored))
        logits = self._logits(hidden[row_index, predecessor])  # (scored tokens, vocab)
        token_logprobs = torch.log_softmax(logits.float(), -1).gather(-1, target[:, None])[:, 0]
        scores = torch.zeros(len(owners), device=device).index_add_(0, candidate, token_logprobs)
        scores = scores - torch.tensor([processor.candidate_log_prior(tasks[o], label)
                                        for o, label in zip(owners, labels)], device=device)
        for i in items:
            picks = [j for j, o in enumerate(owners) if o == i]
            logits = torch.log_softmax(scores[picks], 0)
            head = self._readout_label_logprobs(prefixes[i], tasks[i], [labels[j] for j in picks])
            probs = torch.softmax(logits if head is None else logits + head.to(device), 0)
            best = int(probs.argmax())
            label = labels[picks[best]]
            answers[i] = BiomechGPTAnswer(question=questions[i], task=tasks[i],
                                          answer=processor.candidate_text(tasks[i], label), label=label,
                                          confidence=float(probs[best]),
                                          probabilities={labels[j]: float(p) for j, p in zip(picks, probs)})

    def _grade_values(self, processor: Any, items: list[int], prefixes: list[MotionPrefix], questions: list[str],
                      tasks: list[str | None], answers: list, max_tokens_per_pass: int = 4096) -> None:
        """Answer numeric questions with the mean of the model's distribution over the task's values.

        Greedy decoding picks digits one at a time and drifts to round numbers ("120", "12.0") whenever the model is
        unsure; the mean over every value minimises the squared error under the model's own belief and comes with
        its spread. Each question gets one row: its tokens, then a trie of the values' answer tokens (values share
        their leading digits), scored in one forward pass after the motion's cached prefix; a 4-D mask lets each
        token see the prefix and its own ancestors only."""
        device = self.device
        layouts = [_trie_layout(processor.question_ids(questions[i]), processor.numeric_candidates(tasks[i])[1])
                   for i in items]
        start = 0
        while start < len(items):  # rows of at most max_tokens_per_pass tokens in all
            stop, tokens = start + 1, len(layouts[start][0])
            while stop < len(items) and tokens + len(layouts[stop][0]) <= max_tokens_per_pass:
                tokens += len(layouts[stop][0])
                stop += 1
            chunk = list(range(start, stop))
            cache, prefix_mask = _stack_prefixes([prefixes[items[k]] for k in chunk], device)
            input_ids = _right_pad([layouts[k][0] for k in chunk], processor.pad_token_id, device)[0]
            length = input_ids.shape[1]
            visible = torch.zeros(len(chunk), length, length, dtype=torch.bool)
            depth = torch.zeros(len(chunk), length, dtype=torch.long)
            for row, k in enumerate(chunk):
                n = len(layouts[k][0])
                visible[row, :n, :n] = torch.from_numpy(layouts[k][2])
                depth[row, :n] = torch.as_tensor(layouts[k][3])
                visible[row, n:, n:] = torch.eye(length - n, dtype=torch.bool)  # padding sees itself only
            position_ids = prefix_mask.sum(1, keepdim=True) + depth.to(device)
            hidden = self._tree_pass(cache, prefix_mask, input_ids, visible.to(device), position_ids)
            for row, k in enumerate(chunk):
                i = items[k]
                predecessor, target, candidate = (torch.as_tensor(col, device=device) for col in layouts[k][1])
                # siblings share their predecessor: one output-head row per trie node, not per scored token
                nodes, node_of_target = torch.unique(predecessor, return_inverse=True)
                logprobs = torch.log_softmax(self._logits(hidden[row, nodes]).float(), -1)
                token_logprobs = logprobs[node_of_target, target]
                values = torch.tensor(processor.numeric_candidates(tasks[i])[0], dtype=torch.float64, device=device)
                scores = torch.zeros(len(values), dtype=torch.float64, device=device)
                scores.index_add_(0, candidate, token_logprobs.double())
                head = self._readout_value_logprobs(prefixes[i], tasks[i], values)
                probs = torch.softmax(scores if head is None else scores + head, 0)
                mean = float((probs * values).sum())
                spread = float((probs * (values - mean) ** 2).sum().sqrt())
                decimals = processor.numeric_answers[tasks[i]][0]["decimals"]
                answers[i] = BiomechGPTAnswer(question=questions[i], task=tasks[i],
                                              answer=processor.numeric_text(tasks[i], mean),
                                              value=round(mean, decimals), unit=processor.task_units.get(tasks[i]),
                                              spread=spread)
            start = stop

    def _tree_pass(self, cache: Any, prefix_mask: torch.Tensor, input_ids: torch.Tensor, visible: torch.Tensor,
                   position_ids: torch.Tensor) -> torch.Tensor:
        """Hidden states of `input_ids` (rows of tokens laid out as trees after stacked prefix caches): each token
        sees its row's prefix and the new tokens `visible` marks `(rows, queries, keys)`."""
        length = input_ids.shape[1]
        visible = torch.cat([prefix_mask.bool()[:, None, :].expand(-1, length, -1), visible], 2)
        dtype = self.get_input_embeddings().weight.dtype
        mask = torch.zeros(visible.shape, dtype=dtype, device=visible.device).masked_fill(~visible,
                                                                                          torch.finfo(dtype).min)
        return self.language_model.get_decoder()(input_ids=input_ids, attention_mask=mask[:, None],
                                                 position_ids=position_ids, cache=cache,
                                                 use_cache=True).last_hidden_state

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The wrapped model's output head on selected hidden states (with its final soft-capping, if any)."""
        logits = self.language_model.get_output_embeddings()(hidden)
        softcap = getattr(self.config.text_config, "final_logit_softcapping", None)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    def _generate(self, processor: Any, items: list[int], prefixes: list[MotionPrefix], questions: list[str],
                  tasks: list[str | None], max_new_tokens: int, answers: list) -> None:
        """Greedy decoding of numeric and free answers, batched, after the motions' prefix caches."""
        device = self.device
        row_prefixes = list({id(prefixes[i]): prefixes[i] for i in items}.values())
        row_of = {id(prefix): row for row, prefix in enumerate(row_prefixes)}
        cache, prefix_mask = _stack_prefixes(row_prefixes, device)  # one row per motion
        rows = torch.tensor([row_of[id(prefixes[i])] for i in items], device=device)
        q_ids, q_mask = _right_pad([processor.question_ids(questions[i]) for i in items], processor.pad_token_id,
                                   device)
        mask = torch.cat([prefix_mask[rows], q_mask], 1)  # (items, prefix + question), holes where padded
        position = prefix_mask[rows].sum(1)  # logical position of each question's first token
        logits, cache = self._extend(_fork_cache(cache, rows), q_ids, mask, position)
        position = position + q_mask.sum(1)
        last = q_mask.sum(1) - 1
        stop = torch.tensor(sorted(processor.stop_token_ids), device=device)
        token = self._text_only(logits[torch.arange(len(items), device=device), last]).argmax(-1)  # (items,)
        outputs = [token]
        done = torch.isin(token, stop)
        for _ in range(max_new_tokens - 1):
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            logits, cache = self._extend(cache, token[:, None], mask, position)
            position = position + 1
            token = torch.where(done, stop[0], self._text_only(logits[:, -1]).argmax(-1))
            outputs.append(token)
            done = done | torch.isin(token, stop)
        generated = torch.stack(outputs, 1).tolist()
        for row, i in enumerate(items):
            ids = generated[row]
            ids = ids[:next((k for k, t in enumerate(ids) if t in processor.stop_token_ids), len(ids))]
            text = processor.decode(ids, skip_special_tokens=True).strip()
            label, value, unit = processor.parse_answer(tasks[i], text) if tasks[i] is not None else (None,) * 3
            answers[i] = BiomechGPTAnswer(question=questions[i], task=tasks[i], answer=text, label=label,
                                          value=value, unit=unit)

    @property
    def non_text_token_ids(self) -> list[int]:
        """Ids an answer never contains: the motion codes, the motion markers and the soft-token placeholder. They
        are also the saved generation config's `suppress_tokens`, so `model.generate` (remote code included) never
        emits them."""
        config = self.config
        markers = [config.motion_start_token_id, config.motion_end_token_id, config.motion_feature_token_id]
        return sorted({*(m for m in markers if m is not None), *config.motion_token_ids})

    def _text_only(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits` `(..., vocab)` with the non-text ids at the lowest value (greedy decoding never picks them)."""
        banned = torch.as_tensor(self.non_text_token_ids, device=logits.device)
        return logits.index_fill(-1, banned, torch.finfo(logits.dtype).min)

    def _extend(self, cache: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, start: torch.Tensor,
                logits: bool = True, inputs_embeds: torch.Tensor | None = None) -> tuple[torch.Tensor | None, Any]:
        """Run `input_ids` (or their `inputs_embeds`) after `cache`; `attention_mask` covers cache + new tokens
        (holes allowed for padding), `start` is each row's logical position of its first new token."""
        from transformers import DynamicCache

        position_ids = start[:, None] + torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        out = self.language_model(
            input_ids=None if inputs_embeds is not None else input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache if cache is not None else DynamicCache(config=self.config.text_config),
            use_cache=True,
            logits_to_keep=0 if logits else 1,
        )
        return (out.logits if logits else None), out.cache


@dataclass(frozen=True, eq=False)
class _PrefixRequest:
    """A motion's prefix before it is run: its token ids and, for models that read them, its feature frames."""

    input_ids: tuple[int, ...]
    motion_inputs: dict | None = None
    fingerprint: str | None = None
    warning: str | None = None

    @property
    def key(self) -> tuple:
        return self.input_ids, self.fingerprint


def _trie_layout(question_ids: Sequence[int], candidates: Sequence[Sequence[int]]
                 ) -> tuple[list[int], tuple[list[int], list[int], list[int]], np.ndarray, list[int]]:
    """One question followed by a trie of its candidate answers, as one row of tokens.

    Returns the row's token ids; the scored targets as `(predecessor index, target id, candidate number)` columns;
    the `(tokens, tokens)` visibility matrix (a token sees its ancestors and itself); and each token's depth (its
    position after the prefix). A candidate's last token is only a target: nothing is predicted from it."""
    ids = list(question_ids)
    parent = [-1, *range(len(ids) - 1)]
    node_of: dict[tuple[int, int], int] = {}
    predecessors, targets, owners = [], [], []
    for number, candidate in enumerate(candidates):
        at = len(question_ids) - 1
        for k, token in enumerate(candidate):
            predecessors.append(at)
            targets.append(int(token))
            owners.append(number)
            if k == len(candidate) - 1:
                break
            key = (at, int(token))
            if key not in node_of:
                node_of[key] = len(ids)
                ids.append(int(token))
                parent.append(at)
            at = node_of[key]
    visible = np.zeros((len(ids), len(ids)), dtype=bool)
    depth = [0] * len(ids)
    for node, up in enumerate(parent):  # parents come before their children
        if up >= 0:
            visible[node] = visible[up]
            depth[node] = depth[up] + 1
        visible[node, node] = True
    return ids, (predecessors, targets, owners), visible, depth


def _shared_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix that all `sequences` share, leaving each at least one token of its own."""
    if len(sequences) < 2:
        return 0
    limit = min(len(seq) for seq in sequences) - 1
    length = 0
    while length < limit and all(seq[length] == sequences[0][length] for seq in sequences):
        length += 1
    return length


def _right_pad(sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def _has_keys(layer: Any) -> bool:
    return bool(getattr(layer, "is_initialized", False) and layer.keys is not None and layer.keys.numel())


def _stack_prefixes(prefixes: Sequence[MotionPrefix], device: torch.device) -> tuple[Any, torch.Tensor]:
    """One batched cache over `prefixes` (row `r` is `prefixes[r]`, right-padded to the longest) and its mask
    `(rows, longest)`, 1 on real prefix tokens. The prefixes' own caches stay untouched: the result is a new cache
    object whose layers hold the prefix tensors (one prefix) or new padded tensors (several), and forward passes
    concatenate onto them into new tensors."""
    lengths = [p.length for p in prefixes]
    width = max(lengths)
    mask = torch.zeros(len(prefixes), width, dtype=torch.long, device=device)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    stacked = copy.copy(prefixes[0].cache)
    stacked.layers = []
    for index, layer in enumerate(prefixes[0].cache.layers):
        new = copy.copy(layer)
        if _has_keys(layer):
            if len(prefixes) == 1:
                new.keys, new.values = layer.keys.to(device), layer.values.to(device)  # no copy on the same device
            else:
                parts = [p.cache.layers[index] for p in prefixes]
                # (rows, heads, width, head_dim); zeros in the holes, which the mask hides
                new.keys = torch.cat([nn.functional.pad(x.keys.to(device), (0, 0, 0, width - x.keys.shape[2]))
                                      for x in parts])
                new.values = torch.cat([nn.functional.pad(x.values.to(device), (0, 0, 0, width - x.values.shape[2]))
                                        for x in parts])
        stacked.layers.append(new)
    return stacked, mask


def _fork_cache(cache: Any, index: torch.Tensor) -> Any:
    """A cache whose row `r` is row `index[r]` of `cache`; the original stays untouched (layers append by cat)."""
    forked = copy.copy(cache)
    forked.layers = []
    for layer in cache.layers:
        new = copy.copy(layer)
        if _has_keys(layer):
            new.keys = layer.keys.index_select(0, index)
            new.values = layer.values.index_select(0, index)
        forked.layers.append(new)
    return forked
