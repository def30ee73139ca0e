"""``mlflow run . -e tune``: the tune stage with the MLproject's parameters (the same names as ``rose tune``)."""

import sys

from rose.cli import main
from rose.tracking import adopt_launcher_run

if __name__ == "__main__":
    adopt_launcher_run()
    sys.exit(main(["tune", *sys.argv[1:]]))
