import sys

from metriclab.cli import main

sys.exit(main())
