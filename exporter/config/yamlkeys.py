"""Duplicate keys in a YAML document: PyYAML keeps the last silently, Prometheus refuses them."""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


def duplicate_keys(node: Node, path: str = "") -> list[str]:
    """``key.path: duplicate key 'x' (first at line N, again at line M)`` for every repeated key."""
    problems: list[str] = []
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else None
            here = f"{path}.{name}" if path else str(name)
            if name is not None and name != "<<":
                if name in seen:
                    problems.append(f"{here}: duplicate key {name!r} (first at line {seen[name] + 1}, "
                                    f"again at line {key.start_mark.line + 1})")
                else:
                    seen[name] = key.start_mark.line
            problems += duplicate_keys(value, here)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            problems += duplicate_keys(item, f"{path}[{i}]")
    return problems
