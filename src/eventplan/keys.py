"""Personal API keys and what each may read.

Keys are kept as SHA-256 digests only, never whole. The keys given to the server
read every project (admin keys); a key in a project's `api_keys` reads that project
alone (PostHog's scoped personal keys are the model). With no key configured, one
admin key is made on the first run, shown once and kept hashed in the store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Access:
    """What a personal API key (or the session it logged in) may read."""

    projects: frozenset[str] | None  # None: every project (an admin key)

    def allows(self, project: str) -> bool:
        return self.projects is None or project in self.projects


EVERY_PROJECT: Final = Access(None)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The server's keys, by digest, with what each may read."""

    def __init__(
        self,
        admin_keys: Iterable[str],
        admin_digests: Iterable[str],
        project_keys: Iterable[tuple[str, Iterable[str]]],
        stored_admin: Callable[[Callable[[], str]], str],
    ) -> None:
        """`project_keys`: (project, its keys); `stored_admin(make)`: the first run's
        admin key digest, kept by the store (`make` makes one when there is none)."""
        self._access: dict[bytes, Access] = {hash_key(key): EVERY_PROJECT for key in admin_keys}
        self._access |= {bytes.fromhex(digest): EVERY_PROJECT for digest in admin_digests}
        self.first_run_key: str | None = None
        if not self._access:
            self._access[bytes.fromhex(stored_admin(self._make_admin_key))] = EVERY_PROJECT
        for project, keys in project_keys:
            for key in keys:
                held = self._access.get(hash_key(key), Access(frozenset()))
                if held.projects is not None:
                    self._access[hash_key(key)] = Access(held.projects | {project})

    def _make_admin_key(self) -> str:
        self.first_run_key = "phx_" + secrets.token_urlsafe(24)
        return hash_key(self.first_run_key).hex()

    def access(self, key: str) -> Access | None:
        """What a personal API key may read; None for a key that is not one."""
        if not key:
            return None
        digest = hash_key(key.strip())
        for allowed, access in self._access.items():
            if hmac.compare_digest(digest, allowed):
                return access
        return None
