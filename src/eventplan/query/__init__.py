"""Queries: one model, one engine, results with plan-aware warnings."""
