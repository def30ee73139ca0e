"""``mlflow run . -e score``: the score stage with the MLproject's parameters (the same names as ``rose score``)."""

import sys

from rose.cli import launched

if __name__ == "__main__":
    sys.exit(launched("score", ["score", *sys.argv[1:]]))
