"""biomechgpt.dataset_builder"""
