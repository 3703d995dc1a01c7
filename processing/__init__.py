"""biomechgpt.processing"""
