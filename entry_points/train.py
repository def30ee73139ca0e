"""``mlflow run . -e train``: the train stage with the MLproject's parameters (the same names as ``rose train``)."""

import sys

from rose.cli import launched

if __name__ == "__main__":
    sys.exit(launched("train", ["train", *sys.argv[1:]]))
