"""The container's health check (the image's HEALTHCHECK and the ECS task's): exit 0 when /livez
answers 200, i.e. while the process serves HTTP, whatever the database does."""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('LISTENER_PORT', '8080')}/livez"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
