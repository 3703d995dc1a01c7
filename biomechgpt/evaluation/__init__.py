"""biomechgpt.evaluation"""
