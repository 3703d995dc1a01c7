"""biomechgpt.metrics"""
