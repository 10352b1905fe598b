"""The web UI: dashboards, the live event feed, the plan explorer, alerts — views of the API."""
