"""Evaluations, the model registry and estimates."""

__all__ = []
