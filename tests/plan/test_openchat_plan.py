"""plans/openchat.yaml holds everything the seed names."""

from __future__ import annotations

import pytest

from eventplan.plan import Plan

# Seed §2: the 14 events and the key properties the table names for each.
SEED_EVENTS = {
    "marketing.visit_landing": {
        "referrer_url",
        "referrer_domain",
        "utm_source",
        "entry_path",
        "session_is_guest",
    },
    "marketing.cta_clicked": {"cta_id", "cta_copy", "section", "screen_width_bucket"},
    "dashboard.entered": {"chat_total", "has_api_key", "entry_path", "brand_theme"},
    "chat.created": {"chat_id", "source", "storage_backend", "title_length"},
    "chat_message_submitted": {
        "chat_id",
        "model_id",
        "characters",
        "attachment_count",
        "has_api_key",
    },
    "chat_message_stream": {
        "chat_id",
        "model_id",
        "status",
        "duration_ms",
        "characters",
        "openrouter_status",
        "rate_limit_bucket",
    },
    "chat.rate_limited": {"chat_id", "limit", "window_ms", "client_ip_hash_trunc"},
    "chat.attachment_event": {"chat_id", "result", "file_mime", "file_size_bytes", "limit_bytes"},
    "openrouter.key_prompt_shown": {"reason", "has_api_key"},
    "openrouter.key_saved": {"source", "masked_tail", "scope"},
    "openrouter.key_removed": {"source", "had_models_cached"},
    "openrouter.models_fetch_failed": {
        "status",
        "error_message",
        "provider_host",
        "has_api_key",
    },
    "sync.connection_state": {"state", "retry_count", "tab_id"},
    "workspace.fallback_storage_used": {"operation", "chat_id", "fallback_size"},
}

# Every enum value the seed names.
SEED_ENUMS = [
    ("marketing.cta_clicked", "cta_id", {"hero_try_openchat", "hero_request_demo"}),
    ("chat.created", "source", {"sidebar_button"}),
    ("chat.created", "storage_backend", {"postgres", "memory_fallback"}),
    ("chat_message_stream", "status", {"completed", "error", "aborted"}),
    ("chat.attachment_event", "result", {"accepted", "rejected"}),
    ("openrouter.key_prompt_shown", "reason", {"missing", "error"}),
    ("openrouter.key_saved", "source", {"modal", "settings"}),
    ("sync.connection_state", "state", {"connected", "retry", "failed"}),
    (
        "workspace.fallback_storage_used",
        "operation",
        {"create", "list", "send", "streamUpsert"},
    ),
    ("chat.created", "ui_theme", {"light", "dark"}),
    ("chat.created", "auth_state", {"guest", "member"}),
    ("chat.created", "deployment", {"local", "staging", "prod"}),
]

CLIENT_SUPER = {
    "app",
    "app_version",
    "auth_state",
    "workspace_id",
    "has_openrouter_key",
    "model_id",
    "ui_theme",
    "brand_theme",
    "deployment",
    "electric_enabled",
}
SERVER = {
    "environment",
    "deployment_region",
    "app",
    "origin",
    "ip_hash",
    "openrouter_latency_ms",
    "openrouter_status",
}


def test_all_fourteen_seed_events_pageview_and_ai_generation_are_planned(
    openchat_plan: Plan,
) -> None:
    # $ai_generation is not in the seed: PostHog's AI lane, planned beside the stream
    assert set(SEED_EVENTS) | {"$pageview", "$ai_generation"} == set(openchat_plan.events)


@pytest.mark.parametrize("event", sorted(SEED_EVENTS))
def test_every_key_property_of_the_seed_is_planned(openchat_plan: Plan, event: str) -> None:
    assert SEED_EVENTS[event] <= set(openchat_plan.events[event].properties)


@pytest.mark.parametrize(("event", "prop", "values"), SEED_ENUMS)
def test_every_enum_value_of_the_seed_is_planned(
    openchat_plan: Plan, event: str, prop: str, values: set[str]
) -> None:
    enum = openchat_plan.properties_of(event)[prop].enum
    assert enum is not None and values <= set(enum)


def test_pageview_enrichment(openchat_plan: Plan) -> None:
    props = openchat_plan.events["$pageview"].properties
    assert {"referrer_url", "referrer_domain", "entry_path", "entry_query"} <= set(props)
    assert "direct" in props["referrer_url"].description


def test_super_properties_reach_client_and_server_events(openchat_plan: Plan) -> None:
    assert set(openchat_plan.properties_of("chat.attachment_event")) >= CLIENT_SUPER
    assert set(openchat_plan.properties_of("chat_message_stream")) >= SERVER
    assert "ui_theme" not in openchat_plan.properties_of("chat_message_stream")
    # chat.created fires on both surfaces, so it may carry both groups.
    assert set(openchat_plan.properties_of("chat.created")) >= CLIENT_SUPER | SERVER


def test_ip_hash_is_sixteen_hex_characters(openchat_plan: Plan) -> None:
    assert openchat_plan.properties_of("chat_message_stream")["ip_hash"].pattern == "^[0-9a-f]{16}$"


def test_privacy_policies_from_the_seed(openchat_plan: Plan) -> None:
    masked = openchat_plan.events["openrouter.key_saved"].properties["masked_tail"].privacy
    assert (masked.policy, masked.keep_last) == ("mask", 4)
    message = openchat_plan.events["openrouter.models_fetch_failed"].properties["error_message"]
    assert message.privacy.policy == "truncate"


def test_owners_and_triggers_come_from_the_implementation_notes(openchat_plan: Plan) -> None:
    for event in openchat_plan.events.values():
        assert event.owner and event.trigger.file.startswith("apps/"), event.name
        assert event.description and event.value, event.name


def test_five_dashboards_and_alerts(openchat_plan: Plan) -> None:
    assert [d.name for d in openchat_plan.dashboards] == [
        "acquisition_to_activation",
        "chat_health",
        "reliability",
        "attachment_demand",
        "model_performance",
    ]
    assert {a.name for a in openchat_plan.alerts} == {
        "fallback_storage_share",
        "rate_limit_spike",
        "model_error_rate",
        "models_fetch_down",
        "sync_failures",
    }
