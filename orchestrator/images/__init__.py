"""Built-in container programs: containers run as processes, well-known images as our servers.

Pure at import (resolve() maps a container to argv + env). The server scripts beside it
(agnhost.py, http_server.py over serve.py/answers.py) run inside pod namespaces, started by
orchestrator.node.containers.
"""

from orchestrator.images.programs import ImageError, ImageProgram
from orchestrator.images.resolve import BUILTIN_IMAGES, expand, image_name, resolve

__all__ = ["BUILTIN_IMAGES", "ImageError", "ImageProgram", "expand", "image_name", "resolve"]
