"""The README's GPU recipe (QLoRA from a 4B instruct model through `accelerate launch`) cannot rot: every flag it names
exists, its accelerate config loads, and its training line, as written but with a tiny local base, a tiny cohort and
2 steps, trains on this CPU machine under `accelerate launch` and saves a model and its adapter."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from biomechgpt.cli import build_parser, main
from test_train_helpers import make_hub_llama

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _recipe_commands() -> list[list[str]]:
    """The recipe's commands (continuation lines joined, comments dropped), each as argv."""
    text = README.read_text()
    start = text.index("#### The GPU recipe")
    block = re.search(r"```bash\n(.*?)```", text[start:], flags=re.S).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _subcommand(argv: list[str]) -> tuple[str, list[str]]:
    """(`biomechgpt` subcommand, its arguments) of a recipe line, through `accelerate launch ... -m biomechgpt.cli`."""
    if argv[0] == "biomechgpt":
        return argv[1], argv[2:]
    assert argv[:2] == ["accelerate", "launch"], argv
    module = argv.index("-m")
    assert argv[module + 1] == "biomechgpt.cli"
    return argv[module + 2], argv[module + 3:]


def _options(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {flag for action in sub._actions for flag in action.option_strings}


def test_every_flag_of_the_recipe_exists():
    commands = _recipe_commands()
    assert [_subcommand(c)[0] for c in commands] == ["simulate", "train-tokenizer", "build-dataset", "train",
                                                     "evaluate", "push"]
    for argv in commands:
        command, args = _subcommand(argv)
        unknown = [a for a in args if a.startswith("--") and a not in _options(command)]
        assert not unknown, f"biomechgpt {command}: {unknown}"
    train = next(c for c in commands if _subcommand(c)[0] == "train")
    assert {"--qlora", "--bf16", "--gradient-checkpointing"} <= set(train)


def test_the_accelerate_config_is_one_bf16_process():
    from accelerate.commands.config.config_args import load_config_from_file

    train = next(c for c in _recipe_commands() if c[0] == "accelerate")
    config_file = ROOT / train[train.index("--config_file") + 1]
    config = load_config_from_file(str(config_file))
    assert (config.distributed_type.value, config.num_processes, config.mixed_precision) == ("NO", 1, "bf16")


@pytest.mark.slow
def test_the_recipe_trains_under_accelerate_launch_on_a_tiny_scale(tmp_path):
    """Steps 1-2 of the recipe with the paths under tmp_path, 4 participants, an untrained 16-code MotionTokenizer, a
    tiny local Llama as the base and `--max-steps 2` in place of `--epochs 2`; the rest of the training line as
    written (QLoRA, bf16, gradient checkpointing, the accelerate config)."""
    import torch

    from biomechgpt.processing.configuration_motion_tokenizer import MotionTokenizerConfig
    from biomechgpt.processing.modeling_motion_tokenizer import MotionTokenizerModel
    from biomechgpt.processing.tokenization_motion import MotionTokenizer
    from biomechgpt.simulation import simulate_cohort

    runs = tmp_path / "runs" / "gpu"
    simulate_cohort(runs / "cohort", n_participants=4, seed=1, workers=1)
    torch.manual_seed(0)
    MotionTokenizer(MotionTokenizerModel(MotionTokenizerConfig(
        hidden_size=16, num_residual_blocks=1, codebook_size=16, codebook_dim=8))).save_pretrained(runs / "tokenizer")
    build = next(c for c in _recipe_commands() if _subcommand(c)[0] == "build-dataset")
    assert main([a.replace("runs/gpu", str(runs)) for a in build[1:]]) == 0

    train = next(c for c in _recipe_commands() if c[0] == "accelerate")
    argv = [a.replace("runs/gpu", str(runs)) for a in train]
    argv[argv.index("--base-model") + 1] = str(make_hub_llama(tmp_path / "base"))
    argv[argv.index("--epochs"):argv.index("--epochs") + 2] = ["--max-steps", "2", "--encoder-epochs", "1",
                                                               "--alignment-epochs", "0", "--no-progress"]
    argv[argv.index("--config_file") + 1] = str(ROOT / argv[argv.index("--config_file") + 1])
    argv[0] = str(Path(sys.executable).with_name("accelerate"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    model = runs / "model"
    summary = json.loads((model / "training_summary.json").read_text())
    assert (summary["mode"], summary["steps"]) == ("qlora", 2)
    assert summary["arguments"]["gradient_checkpointing"] and summary["arguments"]["bf16"]
    assert (model / "model.safetensors").is_file() and (model / "adapter" / "adapter_model.safetensors").is_file()
