"""``mlflow run . -e tune``: the tune stage with the MLproject's parameters (the same names as ``rose tune``)."""

import sys

from rose.cli import launched

if __name__ == "__main__":
    sys.exit(launched("tune", ["tune", *sys.argv[1:]]))
