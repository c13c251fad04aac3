import sys

from crossway.cli import main

sys.exit(main())
