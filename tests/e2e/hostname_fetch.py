"""Shared by the Service e2e tests: a script run inside a pod or node (python -c)."""

# GET /hostname n times (a new connection each), print the answers; "-" for a failure.
FETCH = r"""
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    try:
        s = socket.create_connection((host, port), timeout=1)
        s.sendall(b"GET /hostname HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        out.append(data.split(b"\r\n\r\n", 1)[1].decode().strip() or "?")
    except OSError:
        out.append("-")
print(" ".join(out))
"""


def fetch(tb, pod, host, port, n):
    """FETCH run in ``pod``: the n answers ("-" for each failed connection)."""
    import sys
    r = tb.exec(pod, [sys.executable, "-c", FETCH, host, str(port), str(n)], timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def backends(tb, ns="svc", prefix="web-"):
    """The names of the pods in ``ns`` whose names start with ``prefix``."""
    return {p["metadata"]["name"] for p in tb.list("Pod", ns)
            if p["metadata"]["name"].startswith(prefix)}
