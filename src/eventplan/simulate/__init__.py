"""Traffic that follows a plan: sample events now, the OpenChat simulator later."""
