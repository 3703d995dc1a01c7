"""Releasing a trained model (and its QA corpus) to the Hugging Face Hub: `biomechgpt push`.

A release is built in a staging folder first, exactly as it will be uploaded, then validated, then uploaded with
`huggingface_hub.HfApi.upload_folder`:

- the **model** folder: safetensors weights, `config.json` with `auto_map` and the modeling / processing code files
  (so it loads with `trust_remote_code=True` where biomechgpt is not installed), the text tokenizer,
  `processor_config.json`, the MotionTokenizer under `motion_tokenizer/`, and the model card as `README.md` with the
  evaluation's `model-index` results;
- the **dataset** folder: the Parquet shards under `data/`, the dataset card `README.md` and the corpus's
  `answer_space.json`;
- for a LoRA / QLoRA run released as an **adapter**: the PEFT adapter that training saved (`MODEL/adapter/`: the
  LoRA factors plus the trained rows of the motion vocabulary) and the **base** it applies to (the text model with
  the motion vocabulary added, before fine-tuning), each its own repository.

Validation loads the model with the Auto classes twice, once with the package and once in a fresh interpreter in
which `import biomechgpt` fails (remote code only), asks the same questions about the same motion through both and
requires the same answers: exactly where that is well defined, within a stated tolerance where float noise is
legitimate (see `ANSWER_ATOL`); the dataset must load with `datasets.load_dataset(folder)`. Nothing is uploaded
unless every check passed.

One module per job: `staging` (the folders and the model card), `adapter` (the adapter and its rebuilt base),
`validation` (with `remote_check`, the script the remote-code check runs), `prepare` (build and validate every
folder) and `upload` (the token and the upload). Everything public is importable from here.
"""

from biomechgpt.release.adapter import ADAPTER_CARD_SECTION, ADAPTER_FOLDER, build_adapter_release
from biomechgpt.release.prepare import prepare_release
from biomechgpt.release.staging import (
    MOTION_FOLDER,
    PICKLE_SUFFIXES,
    Release,
    ReleaseError,
    ReleaseFolder,
    build_dataset_release,
    build_model_release,
    list_files,
)
from biomechgpt.release.upload import push_release, resolve_token, upload_release
from biomechgpt.release.validation import (
    ANSWER_ATOL,
    ANSWER_RTOL,
    validate_adapter_release,
    validate_dataset_release,
    validate_model_release,
)

__all__ = [
    "ANSWER_ATOL",
    "ANSWER_RTOL",
    "ReleaseError",
    "ReleaseFolder",
    "Release",
    "PICKLE_SUFFIXES",
    "MOTION_FOLDER",
    "ADAPTER_FOLDER",
    "ADAPTER_CARD_SECTION",
    "prepare_release",
    "build_model_release",
    "build_dataset_release",
    "build_adapter_release",
    "validate_model_release",
    "validate_adapter_release",
    "validate_dataset_release",
    "upload_release",
    "push_release",
    "resolve_token",
    "list_files",
]
