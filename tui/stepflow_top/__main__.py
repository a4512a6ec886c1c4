import sys

from stepflow_top.cli import main

sys.exit(main())
