"""Releasing a LoRA / QLoRA run as the PEFT adapter it trained plus the base it applies to.

The adapter (`MODEL/adapter/`, saved by `biomechgpt train --lora/--qlora`) is copied as trained; the base (the text
model with the motion vocabulary added, before fine-tuning) is rebuilt as training built it (`_rebuild_base`), with the
run's trained motion encoder where the adapter does not hold it. Each gets its own card.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from biomechgpt.release.staging import (
    MOTION_FOLDER,
    ReleaseError,
    check_model_source,
    check_safetensors,
    copy_file,
    empty_folder,
    find_metrics,
    is_hub_id,
    load_summary,
    read_json,
    refuse_pickles,
    stage_processor,
    write_card,
)

__all__ = ["ADAPTER_FOLDER", "ADAPTER_CARD_SECTION", "build_adapter_release"]

_ADAPTER_MODES = ("lora", "qlora")
ADAPTER_FOLDER = "adapter"  # where `biomechgpt train --lora/--qlora` saves the PEFT adapter as trained
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _saved_adapter(model_dir: Path) -> tuple[Path, dict]:
    """The adapter folder a LoRA / QLoRA run saved at training time and its `adapter_config.json`."""
    folder = model_dir / ADAPTER_FOLDER
    missing = [name for name in _ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise ReleaseError(f"--model {model_dir}: no adapter saved by training ({folder} lacks {', '.join(missing)}); "
                           "retrain with biomechgpt train --lora/--qlora, or release it merged")
    refuse_pickles(folder, "--model adapter")
    config = read_json(folder / "adapter_config.json")
    if config.get("peft_type") != "LORA":
        raise ReleaseError(f"--model {model_dir}: {folder}/adapter_config.json peft_type is "
                           f"{config.get('peft_type')!r}, not 'LORA'")
    return folder, config


def _rebuild_base(model_dir: Path, summary: dict, adapter_config: dict):
    """The model a LoRA / QLoRA run's adapter applies to: its base language model with the motion vocabulary added,
    initialised exactly as `train_model` did (same base, codebook and seed), in the dtype the run saved its weights.

    A model that reads motion frames trains its motion encoder alone first (stage 1) and then keeps it frozen, so
    the adapter does not hold it: the base takes the trained encoder from the run's merged weights."""
    import torch
    from safetensors.torch import load_file

    from biomechgpt.training.train_lm import BiomechGPTTrainingArguments, build_model

    base_model = summary.get("base_model")
    if not base_model:
        raise ReleaseError(f"--model {model_dir}: training_summary.json does not name the base model")
    motion_tokenizer = None
    if (model_dir / MOTION_FOLDER / "config.json").is_file():
        from biomechgpt.processing.tokenization_motion import MotionTokenizer

        motion_tokenizer = MotionTokenizer.from_pretrained(model_dir / MOTION_FOLDER)
    config = read_json(model_dir / "config.json")
    run = summary.get("arguments", {})
    # the run's own motion input and encoder shape (older configs predate the settings: codes, no statistics or
    # descriptor token)
    args = BiomechGPTTrainingArguments(
        mode="lora", seed=int(summary.get("seed", 0)), motion_input=config.get("motion_input", "codes"),
        motion_statistics_token=bool(config.get("motion_statistics_token", False)),
        motion_descriptors=bool(config.get("motion_descriptor_size", 0)),
        **{k: run[k] for k in ("num_motion_tokens", "motion_encoder_hidden_size", "motion_encoder_layers")
           if k in run})
    # the saved config's encoder shape, readout tokens and their calibration included
    fields = {k: config[k] for k in ("num_motion_tokens", "motion_encoder_hidden_size", "motion_encoder_layers",
                                     "motion_statistics_token", "motion_descriptor_size", "motion_readout_tasks",
                                     "motion_readout_sizes", "motion_readout_labels", "motion_readout_scales",
                                     "motion_mirror_channels", "motion_mirror_signs", "motion_readout_mirror",
                                     "readout_answer_weight")
              if config.get(k) is not None}
    try:
        model, _ = build_model(str(base_model), "lora", [], motion_tokenizer, config["codebook_size"], args,
                                {**args.motion_encoder, **fields})
    except OSError as err:
        raise ReleaseError(f"base model {base_model}: cannot be loaded to build the adapter's base "
                           f"({' '.join(str(err).split())[:200]})") from None
    if model.config.reads_features and "motion_encoder" not in (adapter_config.get("modules_to_save") or []):
        merged: dict[str, torch.Tensor] = {}
        for path in sorted(model_dir.glob("model*.safetensors")):
            merged.update(load_file(str(path)))
        encoder = {name.removeprefix("motion_encoder."): tensor for name, tensor in merged.items()
                   if name.startswith("motion_encoder.")}
        try:
            model.motion_encoder.load_state_dict(encoder)
        except RuntimeError:
            raise ReleaseError(f"--model {model_dir}: its motion encoder does not fit the base rebuilt from "
                               f"{base_model}; release it merged") from None
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32").replace("torch.", "")
    if dtype in ("bfloat16", "float16"):
        model = model.to(getattr(torch, dtype))
    return model


def build_adapter_release(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    *,
    repo_id: str,
    base_repo_id: str,
    metrics: str | os.PathLike | dict | None = None,
    dataset_repo_id: str | None = None,
) -> tuple[Path, Path]:
    """Stage a LoRA / QLoRA run as the PEFT adapter it trained (`out_dir`, copied from `MODEL/adapter/`) plus the
    base it applies to (`base_dir`: the base language model with the motion vocabulary added, rebuilt as training
    built it).

    The adapter's `adapter_config.json` names `base_repo_id` as its base, so `from_pretrained(repo_id)` (with peft
    installed) fetches the base and applies the adapter. The adapter folder also carries the processor and the
    MotionTokenizer, so `AutoProcessor.from_pretrained(repo_id)` works. A run without a saved adapter (a full
    fine-tune, or one trained before adapters were saved) is refused.

    Returns:
        `(adapter folder, base folder)`.
    """
    import torch

    model_dir = Path(model_dir)
    check_model_source(model_dir)
    summary = load_summary(model_dir)
    if summary.get("mode") not in _ADAPTER_MODES:
        raise ReleaseError(f"--model {model_dir}: --adapter needs a LoRA or QLoRA run (training_summary.json mode "
                           f"is {summary.get('mode')!r}); release it merged")
    adapter, adapter_config = _saved_adapter(model_dir)
    out, base_out = empty_folder(out_dir), empty_folder(base_dir)
    metrics_payload = find_metrics(model_dir, metrics)  # fail before the slow part

    base = _rebuild_base(model_dir, summary, adapter_config)
    base.config.use_cache = True
    base.save_pretrained(base_out)
    stage_processor(model_dir, base_out)
    _write_base_card(base_out, summary, repo_id=repo_id, base_repo_id=base_repo_id)
    del base

    copy_file(adapter / "adapter_model.safetensors", out / "adapter_model.safetensors")
    adapter_config["base_model_name_or_path"] = base_repo_id
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")
    stage_processor(model_dir, out)
    extra = ADAPTER_CARD_SECTION.format(repo_id=repo_id, base_repo_id=base_repo_id, mode=summary["mode"],
                                        rank=adapter_config.get("r"))
    write_card(model_dir, out, repo_id=repo_id, metrics=metrics_payload, dataset_repo_id=dataset_repo_id,
               base_model=base_repo_id, extra=extra)
    check_safetensors(out)
    check_safetensors(base_out)
    torch.set_grad_enabled(True)
    return out, base_out


ADAPTER_CARD_SECTION = """
## This repository is a PEFT adapter

The {mode} fine-tune is released as the rank-{rank} LoRA adapter it trained (plus the trained rows of the motion
vocabulary) on top of [`{base_repo_id}`](https://huggingface.co/{base_repo_id}): the base language model with the
motion vocabulary added, before fine-tuning. With `peft` installed, `from_pretrained` fetches the base and applies the
adapter:

```python
from transformers import AutoModelForCausalLM, AutoProcessor

model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True)  # base + adapter
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model  # optional: plain weights
```
"""


def _write_base_card(out: Path, summary: dict, *, repo_id: str, base_repo_id: str) -> None:
    base_model = summary.get("base_model")
    card = f"""---
library_name: transformers
tags: [biomechgpt, motion-language-model, custom_code]
license: apache-2.0
{f"base_model: {base_model}" if is_hub_id(base_model) else ""}
---

# {base_repo_id.split("/")[-1]}

The base of the BiomechGPT adapter [`{repo_id}`](https://huggingface.co/{repo_id}): the language model
`{base_model}` with the motion vocabulary added (`<motion>`, `</motion>` and one token per MotionTokenizer code,
initialised from the codebook), **not fine-tuned**. Load the adapter repository, not this one, to answer questions:

```python
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True)
```

Loading this base on its own works with the package installed (`import biomechgpt`) or with
`trust_remote_code=True`.
"""
    (out / "README.md").write_text(card.replace("\n\n---", "\n---"))
