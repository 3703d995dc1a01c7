"""The remote-code check of a release, run in a fresh interpreter in which `biomechgpt` cannot be imported.

`python -I remote_check.py FOLDER BASE MOTION_JSON OUT_JSON QUESTIONS_JSON REFERENCE_JSON` loads FOLDER with the Auto
classes and `trust_remote_code=True` (for an adapter, BASE is its base folder, loaded as remote code, and FOLDER is
applied to it with peft; BASE is "" for a model), answers the questions of QUESTIONS_JSON about the motion of
MOTION_JSON, scores the answer texts of REFERENCE_JSON and writes the answers, those log-likelihoods and the modules
the two classes came from to OUT_JSON.

`biomechgpt.release.validation` runs this file by its path (`python -m` would import the package first) and asks and
scores its own load with `motion_for_answers` and `answer_log_likelihoods`, so both loads do it the same way. The file
imports only the standard library at the top; numpy, torch, transformers and peft inside its functions.
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["motion_for_answers", "answer_log_likelihoods", "main"]


def motion_for_answers(processor, motion) -> tuple[list[int], Any]:
    """`(codes, what the model is asked about)` for the validation motion: the codes the bundled MotionTokenizer
    gives (compared between loads; empty without one) and the codes, or the motion itself for a model that reads
    motion frames. Both loads of the validation use it."""
    if isinstance(motion, list):
        return motion, motion
    tokenizer = getattr(processor, "motion_tokenizer", None)
    codes = [int(c) for c in tokenizer.encode(motion)] if tokenizer is not None else []
    return codes, (motion if getattr(processor, "reads_features", False) else codes)


def answer_log_likelihoods(model, processor, codes, motion, questions, answers) -> list[float]:
    """The log-likelihood of each answer text (its tokens and end-of-turn token) after its question about the motion:
    one forward pass per question. Both loads of the validation use it (so it may use only torch and what `model` and
    `processor` provide)."""
    import torch

    extra = {}
    if getattr(processor, "reads_features", False):  # a model that reads the motion's frames, not only its codes
        extra = processor.collate_motion_inputs([processor.motion_inputs(motion)])
    results = []
    for question, answer in zip(questions, answers):
        example = processor.build_training_example(codes, [(question, answer)])
        input_ids, targets = torch.tensor([example["input_ids"]]), torch.tensor(example["labels"][1:])
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **extra).logits
        scored = targets != -100
        logprobs = torch.log_softmax(logits[0, :-1][scored].double(), -1)
        results.append(float(logprobs.gather(-1, targets[scored][:, None]).sum()))
    return results


def main(argv: list[str]) -> None:
    """Run the check: `argv` is `FOLDER BASE MOTION_JSON OUT_JSON QUESTIONS_JSON REFERENCE_JSON`."""
    sys.modules["biomechgpt"] = None  # the package must not be importable: everything comes from the folders
    try:
        import biomechgpt  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("biomechgpt is importable in the remote-code check")
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoProcessor

    folder, base, motion_path, out, questions_path, reference_path = argv[:6]
    if base:  # an adapter: load its base as remote code, then the adapter with peft
        from peft import PeftModel

        model = AutoModelForCausalLM.from_pretrained(base, trust_remote_code=True)
        model = PeftModel.from_pretrained(model, folder).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    model.eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    motion = json.load(open(motion_path))
    if isinstance(motion, dict):
        motion = np.asarray(motion["values"], dtype=np.float32)
    codes, asked = motion_for_answers(processor, motion)
    questions, tasks = json.load(open(questions_path))
    answers = model.answer_batch([asked] * len(questions), questions, tasks=tasks, processor=processor,
                                 max_new_tokens=24)
    texts = json.load(open(reference_path))
    result = {"codes": codes, "answers": [a.to_dict() for a in answers],
              "log_likelihoods": answer_log_likelihoods(model, processor, codes, motion, questions, texts),
              "model_module": type(model).__module__, "processor_module": type(processor).__module__}
    json.dump(result, open(out, "w"))


if __name__ == "__main__":
    main(sys.argv[1:])
