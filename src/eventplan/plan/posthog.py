"""What PostHog's own clients put in every event, which no plan needs to list.

`$`-prefixed properties and events belong to PostHog and are always allowed. A few
plain names are PostHog's too: posthog-js sends `token` and `distinct_id` inside
`properties`, `$pageview` carries `title`, and `$create_alias` carries `alias`.
"""

from __future__ import annotations

from typing import Final

PLAIN_BUILTIN_PROPERTIES: Final = frozenset({"token", "distinct_id", "title", "alias"})

# eventplan's own labels on a bot's events (capture/bots.py); a person's carry neither.
BOT: Final = "$eventplan_bot"
BOT_NAME: Final = "$eventplan_bot_name"
# What an event sent under a name the plan renamed keeps of what was sent (`renamed_from`).
SENT_AS: Final = "$eventplan_sent_as"  # the old event name
RENAMED: Final = "$eventplan_renamed"  # {old property name: the planned one}

# The `$` properties posthog-node and posthog-python put on an ordinary capture
# (read off their sources: `$process_person_profile` for a personless event,
# `$session_id` from a context).
SERVER_LIBRARY_PROPERTIES: Final = (
    "$lib",
    "$lib_version",
    "$geoip_disable",
    "$groups",
    "$process_person_profile",
    "$session_id",
)

# The `$` properties posthog-js, posthog-node and posthog-python send on ordinary
# events (read off their wire format). The validator's fast path knows these by
# name so an ordinary event is checked in one decode (a browser's in two: the first,
# with the server libraries' keys only, fails within its first keys); any other `$` key is
# still allowed, it just takes the exact path.
COMMON_DOLLAR_PROPERTIES: Final = (
    "$lib",
    "$lib_version",
    "$lib_custom_api_host",
    "$is_server",
    "$geoip_disable",
    "$os",
    "$os_version",
    "$os_name",
    "$browser",
    "$browser_version",
    "$browser_language",
    "$browser_language_prefix",
    "$device",
    "$device_type",
    "$device_id",
    "$raw_user_agent",
    "$current_url",
    "$host",
    "$pathname",
    "$referrer",
    "$referring_domain",
    "$screen_height",
    "$screen_width",
    "$viewport_height",
    "$viewport_width",
    "$insert_id",
    "$time",
    "$timezone",
    "$timezone_offset",
    "$session_id",
    "$window_id",
    "$pageview_id",
    "$prev_pageview_id",
    "$prev_pageview_pathname",
    "$prev_pageview_duration",
    "$prev_pageview_last_scroll",
    "$prev_pageview_last_scroll_percentage",
    "$prev_pageview_max_scroll",
    "$prev_pageview_max_scroll_percentage",
    "$prev_pageview_last_content",
    "$prev_pageview_last_content_percentage",
    "$prev_pageview_max_content",
    "$prev_pageview_max_content_percentage",
    "$is_identified",
    "$process_person_profile",
    "$groups",
    "$set",
    "$set_once",
    "$unset",
    "$anon_distinct_id",
    "$user_id",
    "$ip",
    "$initial_person_info",
    "$session_entry_url",
    "$session_entry_host",
    "$session_entry_pathname",
    "$session_entry_referrer",
    "$session_entry_referring_domain",
    "$configured_session_timeout_ms",
    "$config_defaults",
    "$active_feature_flags",
    "$feature_flag_request_id",
    "$sdk_debug_retry_queue_size",
    "$sdk_debug_replay_internal_buffer_length",
    "$sdk_debug_replay_internal_buffer_size",
    "$sdk_debug_current_session_duration",
    "$sdk_debug_session_start",
    "$replay_sample_rate",
    "$replay_script_config",
    "$recording_status",
    "$session_recording_start_reason",
    "$console_log_recording_enabled_server_side",
    "$autocapture_disabled_server_side",
    "$dead_clicks_enabled_server_side",
    "$web_vitals_enabled_server_side",
    "$web_vitals_allowed_metrics",
    "$exception_capture_enabled_server_side",
    "$surveys_activated",
    "$had_persisted_distinct_id",
    "$ignore_sent_at",
    "$eventplan_ip_hash",
    BOT,
    BOT_NAME,
    SENT_AS,
    RENAMED,
)
