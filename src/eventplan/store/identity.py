"""Who is who: distinct ids, the persons they belong to, and PostHog's merge rules.

Kept in memory by the store's one writer and written back as changes, so each
backend only says how to persist a change, never how a merge works.
"""

from __future__ import annotations

import uuid as uuidlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from eventplan.store.records import EventColumns

PERSON_NAMESPACE = uuidlib.UUID("5b6b9c1e-2f0a-4c3e-9a57-0e5f1d7c6a10")

Key = tuple[str, str]  # (project, distinct id) or (project, person id)


@dataclass
class GroupUpdate:
    project: str
    group_type: str
    group_key: str
    properties: dict[str, Any]
    timestamp: int  # epoch microseconds


def update_rounds(groups: Iterable[GroupUpdate]) -> list[list[GroupUpdate]]:
    """The updates in rounds, the n-th update of every group in round n: one insert per
    round (rather than per update) still applies each group's patches in their order."""
    rounds: list[list[GroupUpdate]] = []
    updates_of: dict[tuple[str, str, str], int] = defaultdict(int)
    for group in groups:
        which = (group.project, group.group_type, group.group_key)
        if updates_of[which] == len(rounds):
            rounds.append([])
        rounds[updates_of[which]].append(group)
        updates_of[which] += 1
    return rounds


@dataclass
class IdentityChanges:
    """What one batch changed, for the store to write in the batch's transaction."""

    person_ids: list[list[str]]  # the person of each event, a list per group of the batch
    distinct_ids: dict[Key, str] = field(default_factory=dict)  # (project, distinct id) → person
    people: dict[Key, dict[str, Any]] = field(default_factory=dict)  # live persons' properties
    gone: list[Key] = field(default_factory=list)  # persons merged into another
    # (project, merged person) → the person it is now. Events keep the person they were
    # stored with; queries map them through this small table (PostHog's person overrides)
    # instead of joining every event to its distinct id.
    overrides: dict[Key, str] = field(default_factory=dict)
    groups: list[GroupUpdate] = field(default_factory=list)

    def absorb(self, later: IdentityChanges) -> None:
        """Fold in the changes of a later batch, so both are written at once: where
        they disagree, the later one is the state now."""
        self.person_ids = []  # each batch's own; its events have taken them
        self.distinct_ids.update(later.distinct_ids)
        self.overrides.update(later.overrides)
        self.groups.extend(later.groups)
        gone = set(later.gone)
        self.people = {k: v for k, v in self.people.items() if k not in gone}
        self.people.update(later.people)
        self.gone = [k for k in self.gone if k not in later.people and k not in gone]
        self.gone.extend(later.gone)


IDENTITY_EVENTS = frozenset({"$identify", "$create_alias", "$groupidentify"})


def in_time_order(groups: list[EventColumns]) -> Iterator[tuple[int, int]]:
    """(group, row) of every event, by time when the order can matter (an identity
    event, or a person's properties set), else as they come."""
    ordered = any(
        group.event in IDENTITY_EVENTS or any(group.set) or any(group.set_once) for group in groups
    )
    rows = ((index, row) for index, group in enumerate(groups) for row in range(group.size))
    if not ordered:
        return rows
    return iter(sorted(rows, key=lambda at: groups[at[0]].timestamp[at[1]]))


def person_for(project: str, distinct_id: str) -> str:
    # Deterministic, so replaying the log after a crash gives the same ids.
    return str(uuidlib.uuid5(PERSON_NAMESPACE, f"{project}\0{distinct_id}"))


class Identities:
    def __init__(self) -> None:
        self._persons: dict[Key, str] = {}
        self._person_ids: dict[Key, set[str]] = {}
        self._person_props: dict[Key, dict[str, Any]] = {}
        self._merged_into: dict[Key, set[str]] = {}  # (project, person) → persons merged into it
        self.loaded = False

    def load(
        self,
        distinct_ids: Iterable[tuple[str, str, str]],
        people: Iterable[tuple[str, str, dict[str, Any]]],
        overrides: Iterable[tuple[str, str, str]] = (),
    ) -> None:
        for project, old_person_id, person_id in overrides:
            self._merged_into.setdefault((project, person_id), set()).add(old_person_id)
        for project, distinct_id, person_id in distinct_ids:
            self._persons[(project, distinct_id)] = person_id
            self._person_ids.setdefault((project, person_id), set()).add(distinct_id)
        for project, person_id, properties in people:
            self._person_props[(project, person_id)] = properties
        self.loaded = True

    def apply(self, groups: list[EventColumns]) -> IdentityChanges:
        """Each event's person, after merging ids as `$identify` / `$create_alias` ask,
        taking the events in time order."""
        changed_ids: dict[Key, str] = {}
        changed_people: set[Key] = set()
        overrides: dict[Key, str] = {}
        updates: list[GroupUpdate] = []
        persons = [[""] * group.size for group in groups]
        for index, row in in_time_order(groups):
            group = groups[index]
            project = group.project
            if group.event in IDENTITY_EVENTS:
                self._identify(group, row, changed_ids, changed_people, overrides, updates)
            person = self._person(project, group.distinct_id[row], changed_ids, changed_people)
            set_, set_once = group.set[row], group.set_once[row]
            if set_ or set_once:
                current = self._person_props.setdefault((project, person), {})
                for key, value in (set_once or {}).items():
                    current.setdefault(key, value)
                current.update(set_ or {})
                changed_people.add((project, person))
            persons[index][row] = person
        changes = IdentityChanges(persons, changed_ids, groups=updates, overrides=overrides)
        for changed in sorted(changed_people):
            if self._person_ids.get(changed):
                changes.people[changed] = self._person_props.get(changed, {})
            else:
                changes.gone.append(changed)
        return changes

    def _identify(
        self,
        group: EventColumns,
        row: int,
        changed_ids: dict[Key, str],
        changed_people: set[Key],
        overrides: dict[Key, str],
        updates: list[GroupUpdate],
    ) -> None:
        """What `$identify`, `$create_alias` and `$groupidentify` change."""
        project, distinct_id, props = group.project, group.distinct_id[row], group.properties(row)
        if group.event == "$groupidentify":
            group_type, group_key = props.get("$group_type"), props.get("$group_key")
            if isinstance(group_type, str) and group_key is not None:
                group_set = props.get("$group_set")
                updates.append(
                    GroupUpdate(
                        project,
                        group_type,
                        str(group_key),
                        group_set if isinstance(group_set, dict) else {},
                        group.timestamp[row],
                    )
                )
            return
        other = props.get("$anon_distinct_id" if group.event == "$identify" else "alias")
        if isinstance(other, str) and other and other != distinct_id:
            self._merge(project, distinct_id, other, changed_ids, changed_people, overrides)

    def _person(
        self, project: str, distinct_id: str, changed_ids: dict[Key, str], changed_people: set[Key]
    ) -> str:
        person = self._persons.get((project, distinct_id))
        if person is None:
            person = person_for(project, distinct_id)
            self._assign(project, distinct_id, person, changed_ids)
            changed_people.add((project, person))
        return person

    def _assign(self, project: str, distinct_id: str, person: str, changed: dict[Key, str]) -> None:
        old = self._persons.get((project, distinct_id))
        if old is not None:
            self._person_ids.get((project, old), set()).discard(distinct_id)
        self._persons[(project, distinct_id)] = person
        self._person_ids.setdefault((project, person), set()).add(distinct_id)
        changed[(project, distinct_id)] = person

    def _merge(
        self,
        project: str,
        target: str,
        source: str,
        changed_ids: dict[Key, str],
        changed_people: set[Key],
        overrides: dict[Key, str],
    ) -> None:
        """`source` becomes the same person as `target` (PostHog's identify/alias merge)."""
        target_person = self._persons.get((project, target))
        source_person = self._persons.get((project, source))
        if target_person is None:
            person = self._person(project, source, changed_ids, changed_people)
            self._assign(project, target, person, changed_ids)
        elif source_person is None:
            self._assign(project, source, target_person, changed_ids)
        elif source_person != target_person:
            for distinct_id in list(self._person_ids.get((project, source_person), ())):
                self._assign(project, distinct_id, target_person, changed_ids)
            self._merge_persons(project, target_person, source_person, overrides)
            changed_people.add((project, target_person))
            changed_people.add((project, source_person))

    def _merge_persons(
        self, project: str, target: str, source: str, overrides: dict[Key, str]
    ) -> None:
        """The source person's events, and those of persons merged into it before, now
        belong to the target (overrides are kept one step deep); so do its properties,
        where the target has none of its own."""
        merged_persons = self._merged_into.pop((project, source), set())
        merged_persons.add(source)
        for old in merged_persons:
            overrides[(project, old)] = target
        self._merged_into.setdefault((project, target), set()).update(merged_persons)
        merged = self._person_props.pop((project, source), {})
        kept = self._person_props.setdefault((project, target), {})
        for key, value in merged.items():
            kept.setdefault(key, value)
