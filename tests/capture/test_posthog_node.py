"""The unchanged posthog-node client (from npm) against eventplan."""

from __future__ import annotations

import json
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
