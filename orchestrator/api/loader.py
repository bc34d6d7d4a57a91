"""Load manifests (files, directories, YAML text, dicts) into located documents.

Reads the files it is given; nothing else. Each result is a ``Document`` that remembers
where the object came from, so validation errors can name the file, the document and,
for ``kind: List``, the item. Duplicate mapping keys are an error (as in the API
server's strict decoding) and YAML timestamps stay strings (as they do in k8s JSON).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ValidationError

TEXT_SOURCE = "<text>"
INPUT_SOURCE = "<input>"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Document:
    """One API object as written by the user.

    ``index`` is the 0-based position of the YAML document in its stream (empty documents
    count, so it matches what the user sees); ``item`` is the position inside a
    ``kind: List`` document, else None.
    """

    obj: dict
    source: str
    index: int
    item: int | None = None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and keeps timestamps as strings."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable: construct_mapping reports it with its own message
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml_stream(text: str, source: str) -> list[Document]:
    """Documents of a YAML stream; malformed YAML raises naming the source and line."""
    docs: list[Document] = []
    index = 0
    try:
        for index, obj in enumerate(yaml.load_all(text, Loader=_StrictLoader)):
            docs.extend(_expand(obj, source, index))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ValidationError(f"malformed YAML{where}: {problem}", source=source) from exc
    except yaml.YAMLError as exc:
        raise ValidationError(f"malformed YAML: {exc}", source=source) from exc
    return docs


def _expand(obj: Any, source: str, index: int) -> list[Document]:
    if obj is None:
        return []
    if not isinstance(obj, dict):
        raise ValidationError(f"a document must be a mapping (an API object), "
                              f"got {type(obj).__name__}", source=source, index=index)
    if obj.get("kind") != "List":
        return [Document(obj, source, index)]
    items = obj.get("items") or []
    if not isinstance(items, list):
        raise ValidationError("must be a list", source=source, index=index, field="items")
    out = []
    for i, member in enumerate(items):
        if not isinstance(member, dict):
            raise ValidationError(f"a List item must be a mapping, got {type(member).__name__}",
                                  source=source, index=index, field=f"items[{i}]")
        out.append(Document(member, source, index, i))
    return out


def _read(path: Path) -> list[Document]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read manifest: {exc}", source=str(path)) from exc
    return parse_yaml_stream(text, str(path))


def _looks_like_text(source: str) -> bool:
    return ("\n" in source or ":" in source) and not os.path.exists(source)


def load_documents(source: Any) -> list[Document]:
    """Documents from a path (file, or directory of *.yaml/*.yml/*.json in sorted order),
    YAML text, a dict, or a list of dicts/Documents. Empty documents are skipped and
    ``kind: List`` is expanded into its items. The dicts are the caller's / parser's,
    unmodified: normalize() returns new ones.
    """
    if isinstance(source, Document):
        return [source]
    if isinstance(source, dict):
        return _expand(source, INPUT_SOURCE, 0)
    if isinstance(source, (list, tuple)):
        docs: list[Document] = []
        for i, entry in enumerate(source):
            docs.extend([entry] if isinstance(entry, Document) else _expand(entry, INPUT_SOURCE, i))
        return docs
    if isinstance(source, str) and _looks_like_text(source):
        return parse_yaml_stream(source, TEXT_SOURCE)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
            return [doc for f in files for doc in _read(f)]
        if not path.exists():
            raise ValidationError("no such file or directory", source=str(path))
        return _read(path)
    raise ValidationError(f"cannot load manifests from {type(source).__name__}: expected a "
                          "path, YAML text, a dict or a list of dicts")

