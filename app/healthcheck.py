"""Container health probe: `python -m app.healthcheck`.

Used by the Dockerfile's HEALTHCHECK and the compose healthcheck, so it must run in the slim api image
without curl and without importing FastAPI or the model: only the standard library. It asks the local
server's liveness endpoint and exits 0 on HTTP 200, 1 otherwise, with the reason on stderr.

Environment:
    PORT: the port uvicorn listens on inside the container (default 8000).
    HEALTHCHECK_URL: full URL to probe instead (optional; overrides PORT).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 3.0


def health_url() -> str:
    """Return the URL to probe, from HEALTHCHECK_URL or PORT."""
    explicit = os.environ.get("HEALTHCHECK_URL")
    if explicit:
        return explicit
    port = os.environ.get("PORT") or "8000"
    return f"http://127.0.0.1:{port}/health"


def check(url: str, timeout: float = TIMEOUT_S) -> str | None:
    """Probe `url` once.

    Args:
        url: The URL to GET.
        timeout: Seconds to wait for connect and response.

    Returns:
        None when the server answered 200, else a one-line reason.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:  # 4xx/5xx arrive as exceptions
        return f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return f"{url} unreachable: {reason}"
    if status != 200:
        return f"{url} answered HTTP {status}"
    return None


def main() -> int:
    """Probe the service once; 0 when healthy, 1 otherwise."""
    url = health_url()
    reason = check(url)
    if reason is not None:
        print(f"unhealthy: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
