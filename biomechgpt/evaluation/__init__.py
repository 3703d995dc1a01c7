"""Evaluation of BiomechGPT: every task of the QA corpus's test split against a non-LLM baseline, the paper's
transfer and size experiments, a sim-to-real check on real recordings, the report and the model card."""

from biomechgpt.evaluation.evaluate import evaluate_model, fall_history_ceiling, load_corpus
from biomechgpt.evaluation.model_card import render_model_card, write_model_card
from biomechgpt.evaluation.report import render_report, write_report

__all__ = [
    "evaluate_model",
    "fall_history_ceiling",
    "load_corpus",
    "render_model_card",
    "write_model_card",
    "render_report",
    "write_report",
]
