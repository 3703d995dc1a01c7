"""The README's Python quickstart runs as written, on a tiny model and corpus built here (so it never rots)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_opens_with_the_two_setup_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).splitlines()
    assert [line.split()[:2] for line in first_block[:2]] == [["make", "run"], ["make", "test"]]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_quickstart_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    from test_chat_model import build_real_model
    from test_train_helpers import make_motion

    import biomechgpt

    model_dir, corpus_dir = build_real_model(tmp_path / "built")
    motion_path, second_path = tmp_path / "my_trial.npz", tmp_path / "my_trial_2.npz"
    biomechgpt.save_motion(make_motion(frames=120), motion_path)
    biomechgpt.save_motion(make_motion(frames=90, seed=1), second_path)

    (quickstart,) = _python_blocks()
    for placeholder in ('"runs/default/model/motion_tokenizer"', '"runs/default/model"', '"runs/default/dataset"',
                        '"my_trial.mot"', '"my_trial_2.mot"', '"What is the likely diagnosis?"'):
        assert placeholder in quickstart, f"README quickstart no longer uses {placeholder}"
    code = (
        quickstart.replace('"runs/default/model/motion_tokenizer"', repr(str(model_dir / "motion_tokenizer")))
        .replace('"runs/default/model"', repr(str(model_dir)))
        .replace('"runs/default/dataset"', repr(str(corpus_dir)))
        .replace('"my_trial.mot"', repr(str(motion_path)))
        .replace('"my_trial_2.mot"', repr(str(second_path)))
        # the small model built here knows activity, cadence and summary questions only
        .replace('"What is the likely diagnosis?"', '"What activity is the person performing?"')
    )
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6
    assert out[0].startswith("What activity is this? -> ") and "[activity, confidence 0." in out[0]
    assert "[cadence, spread" in out[1] and "confidence None" not in "\n".join(out)
    assert out[3] in ("Walking.", "Running.")  # the participant answer is a candidate sentence
    assert out[4].startswith("30 codes; reconstructed: (120, 33)")
