"""Scripted traffic experiments: schema, steps, runner (see docs/EXPERIMENTS.md)."""
