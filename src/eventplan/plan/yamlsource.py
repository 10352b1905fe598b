"""YAML loading that remembers where each key came from.

The linter reports `path:line: code: message`, so every mapping built from the
plan file records the line of each of its keys, and duplicate keys (which
PyYAML silently collapses) are kept as findings instead of being lost.
"""

from __future__ import annotations

from typing import Any

import yaml


class SourceMap(dict[str, Any]):
    """A mapping from the YAML file that knows its own line and its keys' lines (1-based)."""

    line: int
    key_lines: dict[str, int]
    duplicate_keys: list[tuple[str, int]]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class SourceList(list[Any]):
    """A sequence from the YAML file with the line of each item."""

    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> SourceMap:
    loader.flatten_mapping(node)
    result = SourceMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    result.duplicate_keys = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key = str(key) if not isinstance(key, str) else key
        line = key_node.start_mark.line + 1
        if key in result:
            result.duplicate_keys.append((key, line))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> SourceList:
    result = SourceList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


class LineLoader(yaml.SafeLoader):
    """A safe loader whose mappings and sequences carry line numbers."""


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(text: str) -> Any:
    """Parse YAML text; raises yaml.YAMLError with a position on a syntax error."""
    return yaml.load(text, Loader=LineLoader)
