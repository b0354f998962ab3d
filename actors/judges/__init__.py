"""Judges: a common Judge interface with OpenAI-compatible, local-model and rule-based judges."""
