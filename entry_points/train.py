"""``mlflow run . -e train``: the train stage with the MLproject's parameters (the same names as ``rose train``)."""

import sys

from rose.cli import main
from rose.tracking import adopt_launcher_run

if __name__ == "__main__":
    adopt_launcher_run()
    sys.exit(main(["train", *sys.argv[1:]]))
