import sys

from lablink_cli.main import main

sys.exit(main())
