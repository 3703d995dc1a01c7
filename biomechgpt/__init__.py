"""biomechgpt: a Hugging Face-native motion-language model for clinical questions about human movement.

Importing the package registers our config, model and processor classes with the transformers Auto classes, so
`AutoConfig`, `AutoModel`, `AutoModelForCausalLM` and `AutoProcessor` resolve to them without `trust_remote_code`.
Heavier parts of the public API are imported lazily on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from biomechgpt.processing.motion import (
    CANONICAL_COORDINATES,
    CANONICAL_FRAME_RATE,
    Motion,
    MotionInputError,
)

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "load_motion": "biomechgpt.motion_io",
    "inspect_motion": "biomechgpt.motion_io",
    "save_motion": "biomechgpt.motion_io",
    "simulate_cohort": "biomechgpt.simulation",
    "load_cohort": "biomechgpt.cohort",
    "Cohort": "biomechgpt.cohort",
    "MotionTokenizerConfig": "biomechgpt.processing.configuration_motion_tokenizer",
    "MotionTokenizerModel": "biomechgpt.processing.modeling_motion_tokenizer",
    "MotionTokenizer": "biomechgpt.processing.tokenization_motion",
    "train_motion_tokenizer": "biomechgpt.training.motion_tokenizer",
    "build_dataset": "biomechgpt.dataset_builder",
    "parse_answer": "biomechgpt.dataset_builder",
    "BiomechGPTQABuilder": "biomechgpt.dataset_builder",
    "TASKS": "biomechgpt.dataset_builder",
    "BiomechGPTConfig": "biomechgpt.modeling.configuration_biomechgpt",
    "BiomechGPTForCausalLM": "biomechgpt.modeling.modeling_biomechgpt",
    "BiomechGPTProcessor": "biomechgpt.processing.processing_biomechgpt",
    "train_model": "biomechgpt.training.train_lm",
    "evaluate_model": "biomechgpt.evaluation",
    "write_model_card": "biomechgpt.evaluation.model_card",
    "compute_task_metrics": "biomechgpt.metrics",
    "METRICS_BY_TASK": "biomechgpt.metrics",
    "NonLLMBaseline": "biomechgpt.evaluation.baseline",
    "BiomechGPTAnswer": "biomechgpt.modeling.modeling_biomechgpt",
    "run_pipeline": "biomechgpt.pipeline",
    "push_release": "biomechgpt.release",
}

# Modules that define `register_auto_classes()`; each registration is idempotent.
_AUTO_REGISTRATION_MODULES = (
    "biomechgpt.processing.tokenization_motion",
    "biomechgpt.modeling.modeling_biomechgpt",
    "biomechgpt.processing.processing_biomechgpt",
)

__all__ = [  # noqa: PLE0604 - the lazy names are strings too
    "CANONICAL_COORDINATES",
    "CANONICAL_FRAME_RATE",
    "Motion",
    "MotionInputError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'biomechgpt' has no attribute {name!r}")


def _register_auto_classes() -> None:
    for module_name in _AUTO_REGISTRATION_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:  # that stage is not part of this installation yet
                continue
            raise
        module.register_auto_classes()


_register_auto_classes()
