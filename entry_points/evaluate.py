"""``mlflow run . -e evaluate``: cross-evaluation cells with the MLproject's parameters (the names of ``rose evaluate``)."""

import sys

from rose.cli import launched

if __name__ == "__main__":
    sys.exit(launched("evaluate", ["evaluate", *sys.argv[1:]]))
