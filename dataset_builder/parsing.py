"""Read an answer sentence back into its structured target.

One parser for the whole project: the corpus tests check that every answer template parses back to its target,
evaluation scores model answers with it, and the model's `ask` uses it to return structured results.

How it reads text:
- Classification: the text is lower-cased, hyphens and underscores become spaces, and it is scanned left to right
  for the wordings of every label of every task (`lexicon.py`), longest wording first at each position. The first
  wording that belongs to the asked task gives the label. Scanning all tasks' wordings together keeps "a walking
  stick" (a device) from reading as "walking" (an activity), and "bilateral crutches" from reading as a side.
- Numeric: the first number followed by a unit of the task ("4.3 km/h", "112 steps per minute"); when no number has
  such a unit, the first number without any unit, in the task's canonical unit. Numbers with another task's unit are
  skipped. `ParsedAnswer.unit` says which unit was read; `ParsedAnswer.value_in(unit)` converts.
- Summary: every classification component is read as above (yes/no and "none" are not used there); numbers are
  assigned by unit (steps/min -> cadence, m/s or km/h -> walking_speed, m or cm -> stride_length, seconds -> the
  timed test the activity names). `ParsedAnswer.fields` holds the components in canonical units and
  `ParsedAnswer.label` the canonical target string (`format_summary_target`), so a whole summary can be compared
  with the row's `target_label`, and each component with `summary_fields(target_label)`.

A text that names nothing of the task gives a `ParsedAnswer` with `label` and `value` None (`ok` is False); callers
count those as unparsed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from collections.abc import Mapping

from .lexicon import LABEL_ALIASES, LABEL_PHRASES, TASK_ONLY_FORMS, UNIT_ALIASES, UNIT_PHRASES
from .tasks import CLASSIFICATION_TASKS, NUMERIC_TASKS, SUMMARY_FIELDS, TASKS, convert_unit
from .templates import format_summary_target

__all__ = ["ParsedAnswer", "parse_answer", "summary_fields", "label_wordings", "normalize_text"]


@dataclass(frozen=True)
class ParsedAnswer:
    """What an answer says.

    Args:
        label (`str`, *optional*): the canonical label (classification), or the canonical target string (summary).
        value (`float`, *optional*): the number read (numeric tasks), in `unit`.
        unit (`str`, *optional*): the unit of `value` ("m/s", "km/h", "steps/min", "m", "cm", "s").
        fields (`Mapping[str, str | float]`): a summary's components; numbers in canonical units.
    """

    label: str | None = None
    value: float | None = None
    unit: str | None = None
    fields: Mapping[str, str | float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the text gave an answer to the task at all."""
        return self.label is not None or self.value is not None

    def value_in(self, unit: str) -> float | None:
        """`value` converted to `unit` (e.g. a speed read in km/h, wanted in m/s)."""
        if self.value is None or self.unit is None:
            return None
        return convert_unit(self.value, self.unit, unit)


def normalize_text(text: str) -> str:
    """Lower-case, typographic quotes to ASCII, hyphens and underscores to spaces, single spaces."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", " ").replace("\u2014", " ")
    text = re.sub(r"[-_]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def _variants(phrase: str) -> set[str]:
    # answers write "a Timed Up and Go test" or "an ankle-foot orthosis (AFO)"; accept them bare too
    base = normalize_text(phrase)
    out = {base}
    no_paren = re.sub(r"\s*\([^)]*\)", "", base).strip()
    out.add(no_paren)
    for form in list(out):
        out.add(re.sub(r"^(a|an|the) ", "", form))
    return {f for f in out if f}


@functools.cache
def label_wordings(task: str) -> dict[str, str]:
    """Every normalized wording the parser accepts for `task`'s labels, mapped to its canonical label.

    Task-only forms (yes/no, "none") are not included; see `lexicon.TASK_ONLY_FORMS`.
    """
    out: dict[str, str] = {}
    for label in TASKS[task].labels:
        # "none" is a label of two tasks; it is a task-only form (TASK_ONLY_FORMS) instead
        forms = {normalize_text(label)} if label != "none" else set()
        for phrase in LABEL_PHRASES[task][label] + LABEL_ALIASES[task].get(label, ()):
            forms |= _variants(phrase)
        for form in forms:
            if out.setdefault(form, label) != label:
                raise ValueError(f"wording {form!r} of task {task} names both {out[form]} and {label}")
    return out


@functools.cache
def _shared_wordings() -> dict[str, tuple[str, str]]:
    """wording -> (task, label) over all classification tasks; a wording may belong to one task only."""
    out: dict[str, tuple[str, str]] = {}
    for task in CLASSIFICATION_TASKS:
        for form, label in label_wordings(task).items():
            if form in out and out[form] != (task, label):
                raise ValueError(f"wording {form!r} names both {out[form]} and {(task, label)}")
            out[form] = (task, label)
    return out


def _alternation(forms) -> str:
    # longest first, so at any position the longest wording wins ("tandem walking" over "walking")
    ordered = sorted(forms, key=lambda f: (-len(f), f))
    return "|".join(re.escape(f) for f in ordered)


@functools.cache
def _scanner(task: str | None) -> tuple[re.Pattern, dict[str, tuple[str, str]]]:
    """A regex over all tasks' wordings (plus `task`'s task-only forms) and the map from wording to (task, label)."""
    table = dict(_shared_wordings())
    if task is not None:
        for label, forms in TASK_ONLY_FORMS.get(task, {}).items():
            for form in forms:
                table[normalize_text(form)] = (task, label)
    pattern = re.compile(rf"(?<![a-z0-9'])(?:{_alternation(table)})(?![a-z0-9'])")
    return pattern, table


@functools.cache
def _unit_table() -> dict[str, str]:
    out: dict[str, str] = {}
    for unit in UNIT_PHRASES:
        for form in UNIT_PHRASES[unit] + UNIT_ALIASES.get(unit, ()):
            out[normalize_text(form)] = unit
    return out


@functools.cache
def _number_pattern() -> re.Pattern:
    units = _alternation(_unit_table())
    return re.compile(rf"(?<![\w.])(\d+(?:\.\d+)?)(?:\s*({units})(?![a-z0-9/]))?")


def _labels_in(text: str, task: str | None) -> dict[str, str]:
    """The first label of each classification task named in `text` (already normalized)."""
    pattern, table = _scanner(task)
    found: dict[str, str] = {}
    for match in pattern.finditer(text):
        owner, label = table[match.group(0)]
        found.setdefault(owner, label)
    return found


def _numbers_in(text: str) -> list[tuple[float, str | None]]:
    table = _unit_table()
    return [(float(m.group(1)), table[m.group(2)] if m.group(2) else None) for m in _number_pattern().finditer(text)]


def parse_answer(task: str, text: str) -> ParsedAnswer:
    """Parse an answer to a question of `task` into its structured target.

    Args:
        task (`str`): a key of `TASKS`.
        text (`str`): the answer, e.g. "The walking speed is about 4.3 km/h." or a model's generation.

    Returns:
        `ParsedAnswer`: `label` for classification tasks, `value` and `unit` for numeric tasks, `fields` and the
        canonical `label` string for the summary; all None when the text does not answer the task.

    Example:
        >>> parse_answer("walking_speed", "The walking speed is about 4.3 km/h.").value_in("m/s")
        1.1944444444444444
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    if not isinstance(text, str):
        raise TypeError(f"answer must be a string, got {type(text).__name__}")
    norm = normalize_text(text)
    spec = TASKS[task]
    if spec.kind == "classification":
        return ParsedAnswer(label=_labels_in(norm, task).get(task))
    if spec.kind == "numeric":
        fallback = None
        for value, unit in _numbers_in(norm):
            if unit in spec.units:
                return ParsedAnswer(value=value, unit=unit)
            if unit is None and fallback is None:
                fallback = value
        return ParsedAnswer(value=fallback, unit=spec.unit) if fallback is not None else ParsedAnswer()
    return _parse_summary(norm)


_UNIT_TASK = {"steps/min": "cadence", "m/s": "walking_speed", "km/h": "walking_speed", "m": "stride_length",
              "cm": "stride_length"}


def _parse_summary(norm: str) -> ParsedAnswer:
    found: dict[str, str | float] = dict(_labels_in(norm, None))
    timed = {"timed_up_and_go": "tug_time", "four_square_step_test": "fsst_time"}.get(str(found.get("activity")))
    for value, unit in _numbers_in(norm):
        name = timed if unit == "s" else _UNIT_TASK.get(unit)
        if name is not None and name not in found:
            found[name] = convert_unit(value, unit, TASKS[name].unit)
    fields = {name: found[name] for name in SUMMARY_FIELDS if name in found}
    return ParsedAnswer(label=format_summary_target(fields) if fields else None, fields=fields)


def summary_fields(target: str) -> dict[str, str | float]:
    """Split a summary's canonical target string back into its components (numbers as floats)."""
    out: dict[str, str | float] = {}
    for part in filter(None, (p.strip() for p in target.split(";"))):
        name, sep, value = part.partition("=")
        if not sep or name not in SUMMARY_FIELDS:
            raise ValueError(f"not a summary target part: {part!r}")
        out[name] = float(value) if name in NUMERIC_TASKS else value
    return out
