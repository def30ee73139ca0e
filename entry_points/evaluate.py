"""``mlflow run . -e evaluate``: cross-evaluation cells with the MLproject's parameters (the names of ``rose evaluate``)."""

import sys

from rose.cli import main
from rose.tracking import adopt_launcher_run

if __name__ == "__main__":
    adopt_launcher_run()
    sys.exit(main(["evaluate", *sys.argv[1:]]))
