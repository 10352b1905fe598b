"""The unchanged posthog-node client (from npm) against eventplan."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from tests.conftest import ROOT, require_tool
from tests.servers import TOKEN, RunningServer

SCRIPT = Path(__file__).parent / "clients" / "posthog_node.mjs"


def test_capture_identify_alias_and_groups(server: RunningServer) -> None:
    node = require_tool("node", "nodejs")
    guest, member = f"node-guest-{uuid.uuid4()}", f"node-member-{uuid.uuid4()}"
    result = subprocess.run(
        [node, str(SCRIPT), server.url, TOKEN, guest, member],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    ids = f"('{guest}', '{member}', '{member}-alias')"
    server.wait_for_count(f"distinct_id IN {ids}", 5)
    rows = server.sql(
        "SELECT event, distinct_id, verdict, properties, person_id FROM events "
        f"WHERE distinct_id IN {ids} ORDER BY timestamp"
    )
    # Events sent in the same millisecond have no order; compare as a multiset.
    events = sorted((r[0], r[2]) for r in rows)
    assert events == sorted(
        [
            ("chat.created", "valid"),
            ("$identify", "valid"),
            ("$create_alias", "valid"),
            ("workspace.fallback_storage_used", "valid"),
            ("workspace.fallback_storage_used", "invalid"),
        ]
    )
    # The guest, the identified member and the alias are one person.
    assert len({r[4] for r in rows}) == 1
    created = next(r for r in rows if r[0] == "chat.created")
    assert json.loads(created[3])["$groups"] == {"workspace": "ws-node"}
    # posthog-node sends $groupidentify as the group itself ("$workspace_ws-node").
    server.wait_for_count("event = '$groupidentify' AND distinct_id = '$workspace_ws-node'", 1)
    [[group]] = server.sql(
        "SELECT properties FROM groups WHERE group_type = 'workspace' AND group_key = 'ws-node'"
    )
    assert json.loads(group) == {"plan": "team"}


SCRIPT_V1 = Path(__file__).parent / "clients" / "posthog_node_v1.mjs"


def test_capture_v1_and_the_ai_lane(server: RunningServer) -> None:
    """POSTHOG_CAPTURE_MODE=v1: events go to /i/v1/analytics/events; captureAi's
    $ai_generation (2 MiB here, past an ordinary event's cap) to /i/v0/ai/batch/."""
    node = require_tool("node", "nodejs")
    person = f"node-v1-{uuid.uuid4()}"
    before = server.health()["counters"]
    result = subprocess.run(
        [node, str(SCRIPT_V1), server.url, TOKEN, person],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "POSTHOG_CAPTURE_MODE": "v1"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"errors": []}
    after = server.health()["counters"]
    for door in ("requests_v1", "requests_ai_lane"):  # each door was taken
        assert after.get(door, 0) > before.get(door, 0), door
    server.wait_for_count(f"distinct_id = '{person}'", 3)
    rows = server.sql(
        "SELECT event, verdict, properties FROM events "
        f"WHERE distinct_id = '{person}' ORDER BY event, verdict DESC"
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("$ai_generation", "valid"),
        ("chat_message_stream", "valid"),
        ("chat_message_stream", "invalid"),
    ]
    streamed = json.loads(rows[2][2])
    # v1 moves $session_id to the top level and $lib to a header: both come back
    assert (streamed["$session_id"], streamed["$lib"]) == ("node-session", "posthog-node")
    assert len(json.loads(rows[0][2])["$ai_input"]) == 2 * 1024 * 1024
