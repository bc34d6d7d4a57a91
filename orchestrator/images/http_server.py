"""nginx-like HTTP server of the built-in container images (nginx, httpd).

Run as `python3 -S -E http_server.py --hostname web-0 --port 80` inside a pod's network
namespace: GET / answers a page naming the pod, /hostname the pod name, /healthz "ok".
Shares serve.py with agnhost.py (a bare port means TCP in the nginx-like ``http`` mode).
Touches: the sockets it serves.
"""

import sys

from serve import main  # the script's own directory is sys.path[0]

if __name__ == "__main__":
    sys.exit(main(default_mode="http"))
