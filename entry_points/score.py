"""``mlflow run . -e score``: the score stage with the MLproject's parameters (the same names as ``rose score``)."""

import sys

from rose.cli import main
from rose.tracking import adopt_launcher_run

if __name__ == "__main__":
    adopt_launcher_run()
    sys.exit(main(["score", *sys.argv[1:]]))
