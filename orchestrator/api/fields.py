"""Field-level validation primitives shared by every kind: typed getters, k8s name rules.

Pure. Every check raises ValidationError carrying the k8s-style field path
("spec.containers[0].ports[1].containerPort"); normalize() adds source/index/object later.
Messages follow the Kubernetes API server's wording where it has one.

All errors of one object at once, as the API server's ErrorList: normalize() runs the
validators inside ``collecting()``, and each independent part is checked in a ``guard()``
block, whose error is recorded while validation goes on with the next part. An error inside
a part ends that part (a ``containers`` that is not a list has no containers to check).
Outside ``collecting()`` a guard is transparent: direct callers get the first error raised.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterable, Iterator, TypeVar

from orchestrator.errors import FieldError, ValidationError

T = TypeVar("T")

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_RE = re.compile(rf"^{_LABEL_FMT}$")
DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_LABEL_FMT}(\.{_LABEL_FMT})*$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_SVC_RE = re.compile(r"^[-a-z0-9]+$")
_HAS_LETTER_RE = re.compile(r"[a-z]")
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
ANNOTATIONS_TOTAL_MAX = 256 * 1024


def fail(field: str | None, message: str) -> None:
    raise ValidationError(message, field=field or None)


class FieldErrors:
    """The field errors found so far in one object, in the order they were found."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, exc: ValidationError) -> None:
        # A value checked from two places must not be reported twice.
        for err in exc.errors:
            if err not in self.errors:
                self.errors.append(err)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError.of(self.errors)


# The collector of the object being normalized; a context variable so that the validators
# keep their signatures and stay usable (first error raised) outside normalize().
_ACTIVE: ContextVar[FieldErrors | None] = ContextVar("calinet_field_errors", default=None)


@contextmanager
def collecting() -> Iterator[FieldErrors]:
    """Make guard() record errors into a new FieldErrors for the duration of the block."""
    errs = FieldErrors()
    token = _ACTIVE.set(errs)
    try:
        yield errs
    finally:
        _ACTIVE.reset(token)


@contextmanager
def guard() -> Iterator[None]:
    """Check one independent part: while collecting, its ValidationError is recorded and
    the caller goes on after the block; otherwise it propagates unchanged."""
    errs = _ACTIVE.get()
    if errs is None:
        yield
        return
    try:
        yield
    except ValidationError as exc:
        errs.add(exc)


def put(out: dict, src: dict, key: str, path: str, check: Callable[[Any, str], Any]) -> None:
    """``out[key] = check(src[key], "path.key")`` when ``src`` has ``key``, guarded."""
    if key in src:
        with guard():
            out[key] = check(src[key], child(path, key))


def each(values: Iterable, path: str, check: Callable[[Any, str], T]) -> list[T]:
    """``check(value, "path[i]")`` for every entry, each one guarded; the results of the
    entries that passed (all of them unless collecting)."""
    out: list[T] = []
    for i, value in enumerate(values):
        with guard():
            out.append(check(value, item(path, i)))
    return out


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def item(path: str, index: int | str) -> str:
    return f"{path}[{index}]"


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _wrong_type(path: str, value: Any, want: str) -> None:
    fail(path, f"must be {want}, got {type_name(value)} {value!r}")


def check_known(obj: dict, known: frozenset[str] | set[str], path: str) -> None:
    """Strict decoding, as `kubectl apply` (--validate=strict) does: a typo is an error,
    not a silently ignored field."""
    for key in obj:
        if key not in known:
            with guard():
                fail(child(path, str(key)), f'unknown field "{child(path, str(key))}"')


def as_map(value: Any, path: str, *, required: bool = False) -> dict:
    if value is None:
        if required:
            fail(path, "Required value")
        return {}
    if not isinstance(value, dict):
        _wrong_type(path, value, "an object")
    return value


def as_list(value: Any, path: str, *, required: bool = False) -> list:
    if value is None:
        if required:
            fail(path, "Required value")
        return []
    if not isinstance(value, list):
        _wrong_type(path, value, "a list")
    return value


def as_str(value: Any, path: str, *, required: bool = False) -> str | None:
    if value is None or (required and value == ""):
        if required:
            fail(path, "Required value")
        return None
    if not isinstance(value, str):
        _wrong_type(path, value, "a string")
    return value


def as_int(value: Any, path: str, *, minimum: int | None = None,
           maximum: int | None = None) -> int | None:
    # bool is an int in Python but not in JSON/Go: `replicas: true` must be rejected.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _wrong_type(path, value, "an integer")
    if minimum is not None and value < minimum:
        fail(path, f"Invalid value: {value}: must be greater than or equal to {minimum}")
    if maximum is not None and value > maximum:
        fail(path, f"Invalid value: {value}: must be less than or equal to {maximum}")
    return value


def as_bool(value: Any, path: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        _wrong_type(path, value, "a boolean")
    return value


def as_str_list(value: Any, path: str) -> list[str]:
    out = as_list(value, path)
    each(out, path, as_str)
    return list(out)


def as_str_map(value: Any, path: str) -> dict[str, str]:
    out = as_map(value, path)
    for k, v in out.items():
        with guard():
            if not isinstance(k, str):
                fail(path, f"key {k!r} must be a string, got {type_name(k)}")
            if not isinstance(v, str):
                _wrong_type(item(path, k), v, "a string")
    return dict(out)


def one_of(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        supported = ", ".join(f'"{a}"' for a in allowed)
        fail(path, f"Unsupported value: {value!r}: supported values: {supported}")
    return value


def check_dns1123_label(value: str, path: str) -> None:
    if len(value) > DNS1123_LABEL_MAX:
        fail(path, f"Invalid value: {value!r}: must be no more than {DNS1123_LABEL_MAX} characters")
    if not DNS1123_LABEL_RE.match(value):
        fail(path, f"Invalid value: {value!r}: a lowercase RFC 1123 label must consist of lower "
                   "case alphanumeric characters or '-', and must start and end with an "
                   "alphanumeric character (e.g. 'my-name', or '123-abc', regex used for "
                   f"validation is '{_LABEL_FMT}')")


def check_dns1123_subdomain(value: str, path: str) -> None:
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        fail(path, f"Invalid value: {value!r}: must be no more than "
                   f"{DNS1123_SUBDOMAIN_MAX} characters")
    if not DNS1123_SUBDOMAIN_RE.match(value):
        fail(path, f"Invalid value: {value!r}: a lowercase RFC 1123 subdomain must consist of "
                   "lower case alphanumeric characters, '-' or '.', and must start and end "
                   "with an alphanumeric character (e.g. 'example.com')")


def check_qualified_name(value: str, path: str) -> None:
    """A label/annotation key: optional DNS-subdomain prefix + '/' + name of <= 63 chars."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            fail(path, f"Invalid value: {value!r}: prefix part must be non-empty")
        else:
            check_dns1123_subdomain(prefix, path)
    else:
        fail(path, f"Invalid value: {value!r}: a qualified name must consist of alphanumeric "
                   "characters, '-', '_' or '.', with an optional DNS subdomain prefix and '/' "
                   "(e.g. 'example.com/MyName')")
        return
    if not name:
        fail(path, f"Invalid value: {value!r}: name part must be non-empty")
    if len(name) > QUALIFIED_NAME_MAX:
        fail(path, f"Invalid value: {value!r}: name part must be no more than "
                   f"{QUALIFIED_NAME_MAX} characters")
    if not _QUALIFIED_NAME_RE.match(name):
        fail(path, f"Invalid value: {value!r}: name part must consist of alphanumeric "
                   "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                   "character (e.g. 'MyName', or 'my.name', or '123-abc')")


def check_label_value(value: str, path: str) -> None:
    if len(value) > LABEL_VALUE_MAX:
        fail(path, f"Invalid value: {value!r}: must be no more than {LABEL_VALUE_MAX} characters")
    if not _LABEL_VALUE_RE.match(value):
        fail(path, f"Invalid value: {value!r}: a valid label must be an empty string or consist "
                   "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                   "alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')")


def check_labels(value: Any, path: str) -> dict[str, str]:
    labels = as_str_map(value, path)
    for k, v in labels.items():
        if isinstance(k, str) and isinstance(v, str):  # else as_str_map reported it
            with guard():
                check_qualified_name(k, path)
            with guard():
                check_label_value(v, item(path, k))
    return labels


def check_annotations(value: Any, path: str) -> dict[str, str]:
    annotations = as_str_map(value, path)
    total = 0
    for k, v in annotations.items():
        if isinstance(k, str) and isinstance(v, str):  # else as_str_map reported it
            with guard():
                check_qualified_name(k.lower(), path)
            total += len(k) + len(v)
    if total > ANNOTATIONS_TOTAL_MAX:
        fail(path, f"Too long: must have at most {ANNOTATIONS_TOTAL_MAX} bytes")
    return annotations


def check_port_name(value: str, path: str) -> None:
    """IANA_SVC_NAME (RFC 6335): <= 15 chars, [-a-z0-9], a letter, no edge or double '-'."""
    if len(value) > 15:
        fail(path, f"Invalid value: {value!r}: must be no more than 15 characters")
    if not _IANA_SVC_RE.match(value):
        fail(path, f"Invalid value: {value!r}: must contain only alpha-numeric characters "
                   "(a-z, 0-9), and hyphens (-)")
    if "--" in value:
        fail(path, f"Invalid value: {value!r}: must not contain consecutive hyphens")
    if not _HAS_LETTER_RE.search(value):
        fail(path, f"Invalid value: {value!r}: must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        fail(path, f"Invalid value: {value!r}: must not begin or end with a hyphen")


def check_distinct_choices(values: list, path: str, allowed, duplicate: str) -> None:
    """Every entry one of ``allowed`` and none twice (``duplicate`` says why it matters)."""
    seen: set = set()
    for i, v in enumerate(values):
        with guard():
            one_of(v, item(path, i), allowed)
            if v in seen:
                fail(item(path, i), f"Duplicate value: {v!r}{duplicate}")
            seen.add(v)


def failed() -> bool:
    """True when the object being collected already has an error (later derived values,
    such as a Pod's QoS class, are then not worth computing)."""
    return bool(_ACTIVE.get())
