"""agnhost-like probe server of the built-in container images (one process per container).

Run as `python3 -S -E agnhost.py --hostname web-0 --port 80/TCP --port 81/UDP --port 82/SCTP`
inside a pod's network namespace; see serve.py for port modes. Touches: the sockets it serves.
"""

import sys

from serve import main  # the script's own directory is sys.path[0]

if __name__ == "__main__":
    sys.exit(main())
