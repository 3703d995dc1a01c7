"""biomechgpt.training"""
