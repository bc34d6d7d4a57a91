"""Error types shared by every calinet package.

Pure: no I/O. Every error a user can meet names what it is about (file, object, field,
node, command) so the message alone says what to fix.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple


class CalinetError(Exception):
    """Base class of every error calinet raises on purpose."""


class FieldError(NamedTuple):
    """One field's problem: ``field`` a dotted path (None when about the whole object)."""

    field: str | None
    message: str


class ValidationError(CalinetError):
    """An input document or spec is invalid.

    ``source`` is the file (or "<text>"), ``index`` the document index in a multi-document
    stream, ``obj`` the object ("Pod default/web-0"), ``field`` a dotted path
    ("spec.containers[0].ports[1].containerPort"). ``errors`` lists every field error of
    the object (as the API server's ErrorList does); ``message`` and ``field`` are the
    first one's, so code reading one error keeps working.
    """

    def __init__(self, message: str, *, source: str | None = None, index: int | None = None,
                 obj: str | None = None, field: str | None = None,
                 errors: Iterable[FieldError] | None = None):
        self.message = message
        self.source = source
        self.index = index
        self.obj = obj
        self.field = field
        self.errors: list[FieldError] = list(errors or ()) or [FieldError(field, message)]
        super().__init__(self._render())

    @classmethod
    def of(cls, errors: Iterable[FieldError], *, source: str | None = None,
           index: int | None = None, obj: str | None = None) -> "ValidationError":
        """One error carrying all of ``errors`` (at least one)."""
        errors = list(errors)
        first = errors[0]
        return cls(first.message, source=source, index=index, obj=obj, field=first.field,
                   errors=errors)

    def _render(self) -> str:
        where = []
        if self.source is not None:
            where.append(str(self.source))
        if self.index is not None:
            where.append(f"document {self.index}")
        if self.obj:
            where.append(self.obj)
        if len(self.errors) > 1:
            # kubectl's MultilineError: "The Pod "x" is invalid:" then "* field: message".
            where.append(f"{len(self.errors)} field errors")
            lines = [f"* {e.field}: {e.message}" if e.field else f"* {e.message}"
                     for e in self.errors]
            return ": ".join(where) + ":\n" + "\n".join(lines)
        if self.field:
            where.append(f"field {self.field}")
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def located(self, *, source: str | None = None, index: int | None = None,
                obj: str | None = None, prefix: str | None = None) -> "ValidationError":
        """Return a copy with missing location parts filled in; ``prefix`` ("items[2]")
        is put in front of every field path."""
        def at(field: str | None) -> str | None:
            if prefix is None:
                return field
            return f"{prefix}.{field}" if field else prefix
        return ValidationError.of(
            [FieldError(at(e.field), e.message) for e in self.errors],
            source=self.source if self.source is not None else source,
            index=self.index if self.index is not None else index,
            obj=self.obj or obj,
        )


class NotFound(CalinetError):
    """A named object (pod, node, namespace...) does not exist."""


class Conflict(CalinetError):
    """An optimistic-concurrency write lost (resourceVersion mismatch)."""


class CommandError(CalinetError):
    """An external command failed; carries argv, exit code and output."""

    def __init__(self, argv, returncode: int, stdout: str = "", stderr: str = "",
                 stdin: str | None = None):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin
        msg = f"command {' '.join(map(str, self.argv))!r} exited {returncode}"
        if stderr.strip():
            msg += f": {stderr.strip()}"
        super().__init__(msg)


class ApplyError(CalinetError):
    """A dataplane applier failed; ``rendered_input`` is what it tried to apply."""

    def __init__(self, message: str, rendered_input: str = ""):
        self.rendered_input = rendered_input
        super().__init__(message)


class IPAMExhausted(CalinetError):
    """No address could be assigned (pools full, or strict affinity with no free block)."""


class SchedulingError(CalinetError):
    """A pod fits on no node; the message lists why per node."""


class SupervisorTimeout(CalinetError):
    """A supervised process or wait did not reach its goal before its deadline."""


class Unavailable(CalinetError):
    """A kernel or system feature this machine lacks (netem, IPIP, SCTP sockets...)."""
