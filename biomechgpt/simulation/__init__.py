"""biomechgpt.simulation"""
