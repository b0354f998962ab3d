"""Config, run directory and Arrow store, the sweep pipeline, CLI, report and demo."""
