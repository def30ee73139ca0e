"""``mlflow run . -e generate``: the generate stage with the MLproject's parameters (the same names as ``rose generate``).

The generate run is the run ``mlflow run`` started (when it is in the study's experiment; see
``rose.launcher``).
"""

import sys

from rose.cli import launched

if __name__ == "__main__":
    sys.exit(launched("generate", ["generate", *sys.argv[1:]]))
