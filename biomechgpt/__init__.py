"""biomechgpt: a Hugging Face-native motion-language model for clinical questions about human movement.

Importing the package registers our config, model and processor classes with the transformers Auto classes, so
`AutoConfig`, `AutoModel`, `AutoModelForCausalLM` and `AutoProcessor` resolve to them without `trust_remote_code`.

The registration waits for transformers: it runs now when transformers is already imported, else as soon as it is
(or as soon as one of our model modules is). So `import biomechgpt` costs numpy, not torch and transformers, and the
`biomechgpt` command starts in well under a second for the commands that need no model (`--help`, `inspect`).
Heavier parts of the public API are imported lazily on first use.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
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
    "MotionDistributionCheck": "biomechgpt.processing.tokenization_motion",
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
    """Register the config, model and processor classes with the transformers Auto classes (idempotent)."""
    for module_name in _AUTO_REGISTRATION_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:  # that stage is not part of this installation yet
                continue
            raise
        module.register_auto_classes()


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Registers the Auto classes once transformers is imported, at the end of the outermost import in progress.

    It finds the spec of `transformers` and of our own modules with the other finders and wraps their loaders; the
    imports are otherwise unchanged. Registering imports our model modules, which need modules of this package (the
    configs) that may be half-imported when transformers finishes, so while any module of this package is still
    being imported the registration waits for that import to finish. The finder removes itself once it has run.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "transformers" and not fullname.startswith(f"{__name__}."):
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _register_when_ready(just_imported=module.__name__)

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, is_package, ...
        return getattr(self.loader, name)


def _register_when_ready(just_imported: str) -> None:
    if "transformers" not in sys.modules:
        return
    # importlib marks a module whose code is still running with `__spec__._initializing`
    for name, module in list(sys.modules.items()):
        ours = name == __name__ or name.startswith(f"{__name__}.")
        if ours and name != just_imported and getattr(getattr(module, "__spec__", None), "_initializing", False):
            return  # that import finishes later and registers then
    hooks = [finder for finder in sys.meta_path if isinstance(finder, _RegisterAfterImport)]
    for finder in hooks:
        sys.meta_path.remove(finder)
    try:
        _register_auto_classes()
    except BaseException:
        sys.meta_path[:0] = hooks
        raise


if "transformers" in sys.modules:
    _register_auto_classes()
elif not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterImport())
