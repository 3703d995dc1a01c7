"""`import biomechgpt` is light (numpy, not torch and transformers) so the `biomechgpt` command starts fast, and it
still makes the transformers Auto classes resolve to our classes whichever is imported first. Each check runs in a
fresh interpreter: in this one the package was imported long ago."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from test_train_helpers import make_motion_tokenizer, make_tiny_model_and_processor

HEAVY = ("torch", "transformers")


def _python(code: str, timeout: int = 300) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("argv", [["--help"], ["inspect", "FILE"], ["inspect", "FILE", "--json"]])
def test_help_and_inspect_import_neither_torch_nor_transformers(reference_motion_dir, argv):
    argv = [str(reference_motion_dir / "normal.mot") if a == "FILE" else a for a in argv]
    loaded = _python(f"""
        import contextlib, io, json, sys
        from biomechgpt.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                status = main({argv!r})
            except SystemExit as exit_:
                status = exit_.code
        assert status == 0 and out.getvalue(), (status, out.getvalue())
        print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))
    """)
    assert json.loads(loaded) == []


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model, processor = make_tiny_model_and_processor()
    processor.motion_tokenizer = make_motion_tokenizer()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("first", [
    "import biomechgpt",  # the documented way: then transformers
    "import transformers; import biomechgpt",
    "import biomechgpt; import peft",  # a library that imports transformers itself
    "from biomechgpt.modeling.configuration_biomechgpt import BiomechGPTConfig",  # a config module alone
])
def test_auto_classes_resolve_to_ours_after_import(model_folder, first):
    loaded = _python(f"""
        import json, sys
        {first}
        from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor
        model = AutoModelForCausalLM.from_pretrained({str(model_folder)!r})
        processor = AutoProcessor.from_pretrained({str(model_folder)!r})
        config = AutoConfig.from_pretrained({str(model_folder / "motion_tokenizer")!r})
        print(json.dumps([type(x).__module__ + "." + type(x).__name__ for x in (model, processor, config)]))
    """)
    assert json.loads(loaded) == [
        "biomechgpt.modeling.modeling_biomechgpt.BiomechGPTForCausalLM",
        "biomechgpt.processing.processing_biomechgpt.BiomechGPTProcessor",
        "biomechgpt.processing.configuration_motion_tokenizer.MotionTokenizerConfig",
    ]


def test_import_biomechgpt_alone_stays_light():
    loaded = _python(f"""
        import json, sys
        import biomechgpt
        biomechgpt.Motion, biomechgpt.load_motion  # the motion API needs numpy only
        print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))
    """)
    assert json.loads(loaded) == []
