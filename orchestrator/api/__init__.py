"""API-object layer: load manifests, default and validate them like the Kubernetes API server.

Pure apart from reading the manifest files load_documents() is given. Objects are plain
dicts in manifest form; ``load_documents`` returns located ``Document``s and
``normalize_all`` turns them into new, defaulted, validated dicts (or raises the first
invalid object's ValidationError, naming file, document and object, and listing every
field error of that object in ``.errors``).
"""

from orchestrator.api.kinds import KINDS, KindInfo, kind_key, resolve_kind
from orchestrator.api.labels import (
    format_label_selector,
    label_selector_matches,
    validate_label_selector,
)
from orchestrator.api.loader import Document, load_documents
from orchestrator.api.meta import generate_name
from orchestrator.api.normalize import kind_info_of, normalize, normalize_all
from orchestrator.api.pod import qos_class
from orchestrator.api.quantity import parse_cpu, parse_memory, parse_quantity
from orchestrator.api.workloads import resolve_int_or_percent

__all__ = [
    "KINDS", "KindInfo", "kind_key", "resolve_kind", "Document", "load_documents", "normalize",
    "normalize_all", "kind_info_of", "label_selector_matches", "validate_label_selector",
    "format_label_selector", "parse_cpu", "parse_memory", "parse_quantity", "generate_name",
    "qos_class", "resolve_int_or_percent",
]
