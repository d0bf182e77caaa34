"""What each setting of a run configuration is: its key, value, type and one-line doc, for `jaxrl config`.

The docs are the trailing `# ...` comments on the config dataclasses' fields,
read from their source: the comment next to a field in the code is the one
the command line shows, so the two cannot drift apart.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize
import typing
from typing import Any

from jaxrl.config import SECTIONS, RunConfig


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str  # as an override names it: algo.learning_rate, env.rewards.torques
    value: Any
    type: str  # as annotated: float, tuple[int, ...]
    doc: str  # the field's trailing comment; empty when it has none


def settings(config: RunConfig) -> list[Setting]:
    """Every field of `config`'s env, algo and train sections, groups of settings flattened (dotted keys)."""
    return [setting for section in SECTIONS for setting in _settings(getattr(config, section), section)]


def _settings(group, prefix: str):
    hints = typing.get_type_hints(type(group))
    docs = field_docs(type(group))
    for field in dataclasses.fields(group):
        value, key = getattr(group, field.name), f"{prefix}.{field.name}"
        if dataclasses.is_dataclass(value):
            yield from _settings(value, key)
        else:
            yield Setting(key, value, _type_name(hints[field.name]), docs.get(field.name, ""))


def _type_name(tp) -> str:
    if typing.get_origin(tp) is None and isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")  # tuple[int, ...], str | None


def value_text(value) -> str:
    """`value` as an override or a recipe writes it (YAML): [64, 64], true, '' for an empty string."""
    if isinstance(value, (tuple, list)):
        return f"[{', '.join(value_text(item) for item in value)}]"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value or "''"
    return repr(value)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """{field: its trailing comment} of dataclass `cls`, inherited fields included; a subclass that
    redefines a field without a comment keeps its parent's."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    """The comments on the fields `cls`'s own body annotates: on the field's lines, the first one."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source kept (a class made at run time, an interactive session)
        return {}
    comments = {token.start[0]: token.string.lstrip("#").strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT}
    docs = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            lines = [line for line in range(node.lineno, node.end_lineno + 1) if comments.get(line)]
            if lines:
                docs[node.target.id] = comments[lines[0]]
    return docs
