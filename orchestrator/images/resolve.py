"""A pod's container -> the program it runs: image names, command/args, env, $(VAR) expansion.

Pure. No images exist here, so a table of well-known images stands in for their
ENTRYPOINT/CMD and the Kubernetes rules pick the argv (command replaces ENTRYPOINT, args
replace CMD; command without args drops CMD). When argv[0] is a program the image is
known for (agnhost, nginx, iperf3...) programs.py maps it to our built-in server; any other
argv (sleep, sh -c ...) runs as given with the host's binaries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from orchestrator.errors import ValidationError
from orchestrator.images import programs
from orchestrator.images.programs import Context, ImageError, ImageProgram


@dataclass(frozen=True)
class Image:
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] | None     # None: computed from the container (iperf3's port)
    programs: tuple[str, ...]       # executables of the image that we emulate

    def default_cmd(self, ctx: Context) -> list[str]:
        return programs.iperf3_default_args(ctx) if self.cmd is None else list(self.cmd)


_AGNHOST = ("agnhost", "netexec", "porter", "serve-hostname", "serve_hostname", "pause")
_NGINX = Image(("/docker-entrypoint.sh",), ("nginx", "-g", "daemon off;"), ("nginx",))

BUILTIN_IMAGES: dict[str, Image] = {
    # agnhost with no arguments serves the container ports (the real one prints its help).
    "agnhost": Image(("/agnhost",), (), _AGNHOST),
    "netexec": Image(("/netexec",), (), ("netexec",)),
    "porter": Image(("/porter",), (), ("porter",)),
    "serve-hostname": Image(("/serve_hostname",), (), ("serve_hostname", "serve-hostname")),
    "pause": Image(("/pause",), (), ("pause",)),
    "nginx": _NGINX,
    "httpd": Image((), ("httpd-foreground",), ("httpd-foreground", "httpd")),
    "iperf3": Image(("iperf3",), None, ("iperf3",)),
    # CoreDNS's image runs /coredns; ours answers cluster.local from the store (orchestrator.dns)
    "coredns": Image(("/coredns",), (), ("coredns",)),
    "busybox": Image((), ("sh",), ()),
    "alpine": Image((), ("/bin/sh",), ()),
    "debian": Image((), ("bash",), ()),
    "ubuntu": Image((), ("bash",), ()),
}

# valueFrom.fieldRef paths the downward API offers and we can answer from the pod object.
_FIELD_REFS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "metadata.uid": ("metadata", "uid"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "status.podIP": ("status", "podIP"),
    "status.hostIP": ("status", "hostIP"),
}


def image_name(ref: str) -> str:
    """"registry.k8s.io/e2e-test-images/agnhost:2.45@sha256:..." -> "agnhost".

    Drops the digest, the tag (a ':' after the last '/', so "localhost:5000/x" keeps its
    registry port out of the way) and every path component but the last.
    """
    ref = ref.strip().split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()


def lookup(name: str) -> Image | None:
    if name in BUILTIN_IMAGES:
        return BUILTIN_IMAGES[name]
    if "nginx" in name:             # nginx-unprivileged, bitnami/nginx, ...
        return _NGINX
    return None


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: defined names are replaced, undefined ones stay as
    written, "$$" is a literal "$" (so "$$(X)" gives "$(X)")."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2:end]
            out.append(env[name] if name in env else text[i:end + 1])
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def resolve(container: dict, pod: dict) -> ImageProgram:
    """The program one container of ``pod`` (a Pod manifest) runs.

    Raises ImageError (a ValidationError with a kubelet ``reason``) naming the pod, the
    container and the field when the image is unknown and no command was given, or when
    the arguments/env cannot be honoured.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    pod_name = f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"
    cname = container.get("name", "?")
    index = next((i for i, c in enumerate(spec.get("containers") or []) if c is container), 0)
    obj, base = f"Pod {pod_name} container {cname}", f"spec.containers[{index}]"

    ref = container.get("image")
    if not isinstance(ref, str) or not ref.strip():
        raise ImageError("image is required", reason="InvalidImageName", obj=obj,
                         field=f"{base}.image")
    hostname = spec.get("hostname") or meta.get("name") or cname
    env = container_env(container, pod, obj, base, hostname)
    ctx = Context(ref, hostname, _ports(container, obj, base), env, obj, base)
    command = [expand(a, env) for a in _strings(container, "command", obj, base)]
    args = [expand(a, env) for a in _strings(container, "args", obj, base)]
    image = lookup(image_name(ref))

    if command:
        argv = command + args
    elif image is None:
        builtin = ", ".join(sorted(BUILTIN_IMAGES))
        raise ImageError(f"image {ref!r} is not a built-in image and no command was given; "
                         f"built-in images: {builtin} (and any *nginx*)", obj=obj,
                         field=f"{base}.image")
    else:
        argv = list(image.entrypoint) + (args or image.default_cmd(ctx))
    if image is not None and argv[0] == "/docker-entrypoint.sh" and len(argv) > 1:
        argv = argv[1:]             # nginx's entrypoint script just execs its arguments
    if not argv:
        raise ImageError("nothing to run: the command and the image's default are empty",
                         reason="CreateContainerError", obj=obj, field=f"{base}.command")
    prog = os.path.basename(argv[0])
    if image is not None and prog in image.programs:
        return programs.BUILDERS[prog](argv[1:], ctx)
    return ImageProgram(argv, env, ref, None)


def container_env(container: dict, pod: dict, obj: str, base: str,
                  hostname: str) -> dict[str, str]:
    """HOSTNAME plus the container's env in order; values may use $(VAR) of earlier ones."""
    if container.get("envFrom"):
        raise ImageError("envFrom (ConfigMaps/Secrets) is not supported by calinet",
                         reason="CreateContainerConfigError", obj=obj, field=f"{base}.envFrom")
    env = {"HOSTNAME": hostname}
    for i, item in enumerate(container.get("env") or []):
        where = f"{base}.env[{i}]"
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise ValidationError("env entry needs a name", obj=obj, field=f"{where}.name")
        if "valueFrom" in item:
            env[name] = _value_from(item["valueFrom"], pod, obj, where)
        else:
            value = item.get("value", "")
            if not isinstance(value, str):
                raise ValidationError(f"env {name} value must be a string, not "
                                      f"{type(value).__name__}", obj=obj, field=f"{where}.value")
            env[name] = expand(value, env)
    return env


def _value_from(src, pod: dict, obj: str, where: str) -> str:
    ref = src.get("fieldRef") if isinstance(src, dict) else None
    if not isinstance(ref, dict):
        kinds = ", ".join(sorted(src)) if isinstance(src, dict) else repr(src)
        raise ImageError(f"valueFrom {kinds} is not supported by calinet (only fieldRef)",
                         reason="CreateContainerConfigError", obj=obj, field=f"{where}.valueFrom")
    path = ref.get("fieldPath", "")
    for prefix in ("metadata.labels['", "metadata.annotations['"):
        if path.startswith(prefix) and path.endswith("']"):
            section = (pod.get("metadata") or {}).get(prefix[9:-2]) or {}
            return str(section.get(path[len(prefix):-2], ""))
    if path not in _FIELD_REFS:
        raise ImageError(f"fieldRef {path!r} is not supported (supported: "
                         f"{', '.join(sorted(_FIELD_REFS))}, metadata.labels['k'], "
                         "metadata.annotations['k'])", reason="CreateContainerConfigError",
                         obj=obj, field=f"{where}.valueFrom.fieldRef.fieldPath")
    section, key = _FIELD_REFS[path]
    return str((pod.get(section) or {}).get(key, ""))


def _strings(container: dict, key: str, obj: str, base: str) -> list[str]:
    value = container.get(key) or []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ValidationError(f"{key} must be a list of strings", obj=obj, field=f"{base}.{key}")
    return value


def _ports(container: dict, obj: str, base: str) -> tuple[tuple[int, str], ...]:
    out = []
    for i, p in enumerate(container.get("ports") or []):
        where = f"{base}.ports[{i}]"
        port = p.get("containerPort") if isinstance(p, dict) else None
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ValidationError(f"containerPort must be 1..65535, not {port!r}", obj=obj,
                                  field=f"{where}.containerPort")
        proto = str(p.get("protocol") or "TCP").upper()
        if proto not in ("TCP", "UDP", "SCTP"):
            raise ValidationError(f"protocol must be TCP, UDP or SCTP, not {proto!r}", obj=obj,
                                  field=f"{where}.protocol")
        if (port, proto) not in out:
            out.append((port, proto))
    return tuple(out)
