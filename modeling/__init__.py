"""biomechgpt.modeling"""
