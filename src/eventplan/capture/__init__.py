"""Capture: PostHog's wire protocol in, enriched and judged events out."""
