"""Stageflow: an async, headless backend for user-defined business processes."""
