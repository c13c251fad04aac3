"""`python -m crossway.testing --port 9100`: run the simulated upstream alone."""

from crossway.testing.upstream import main

main()
