"""Typed tracking code generated from the plan, so the app's code is checked against it."""
