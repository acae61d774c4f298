"""Agents as factories of pure functions: tabular control and exploration."""
