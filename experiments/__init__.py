"""Runnable experiments, one per published result; each writes a PNG and a results JSON."""
