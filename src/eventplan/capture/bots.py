"""Bots told from people, so that traffic counts people.

A user agent is a bot's when it matches the crawler list maintained on PyPI as
`crawler-user-agents` (monperrus/crawler-user-agents: 1,500 patterns, released every
few weeks): uptime monitors running a real Chrome, link-preview fetchers, page-speed
tools and the search engines. posthog-js's own `$browser_type: "bot"` (sent with
`opt_out_useragent_filter`) counts too. A bot's event gets `$eventplan_bot: true` and
`$eventplan_bot_name`; a person's gets neither.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import Any, Final

import crawleruseragents

from eventplan.plan.posthog import BOT, BOT_NAME

UNNAMED_BOT: Final = "bot"  # posthog-js said so, and the list does not know it
MAX_AGENT_CHARS: Final = 1000  # posthog-js cuts `$raw_user_agent` here too
_TRAILING: Final = re.compile(r"[^\w]+$")


@cache
def _patterns() -> list[re.Pattern[str]]:
    return [re.compile(entry["pattern"]) for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA]


@lru_cache(maxsize=8192)  # a site's traffic comes from a few hundred agents
def bot_name(user_agent: str) -> str | None:
    """The name of the bot `user_agent` belongs to (the text the list matched), or
    None for a person's browser."""
    agent = user_agent[:MAX_AGENT_CHARS]
    if not crawleruseragents.is_crawler(agent):
        return None
    for pattern in _patterns():
        found = pattern.search(agent)
        if found:
            return _TRAILING.sub("", found.group(0)) or found.group(0)
    return UNNAMED_BOT


def browser_agent(user_agent: str) -> str | None:
    """A request's user agent when a browser (or a bot posing as one) sent it, else
    None. HTTP libraries (`python-requests`, `curl`, `node`) are on the crawler list,
    but a request they make is an app's server sending its own users' events."""
    return user_agent if user_agent.startswith("Mozilla/") else None


def label_bot(properties: dict[str, Any], request_agent: str | None) -> None:
    """Mark `properties` as a bot's when its agent (`$raw_user_agent`, else the
    browser's that sent the request) is on the list, or posthog-js called it one."""
    agent = properties.get("$raw_user_agent")
    if not isinstance(agent, str) or not agent:
        agent = request_agent
    name = bot_name(agent) if agent else None
    if name is None and properties.get("$browser_type") == "bot":
        name = UNNAMED_BOT
    if name is not None:
        properties[BOT] = True
        properties[BOT_NAME] = name
