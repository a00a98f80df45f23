"""Simulated stacks and fault scenarios with known ground truth."""
