import sys

from lablink_client.cli import main

sys.exit(main())
