"""``mlflow run . -e pipeline -P config=...``: a whole study (the same flags as ``rose pipeline``).

The run ``mlflow run`` started is the study's pipeline run and the parent of the runs the study starts (when it is
in the study's experiment).
"""

import sys

from rose.cli import launched

if __name__ == "__main__":
    sys.exit(launched("pipeline", ["pipeline", *sys.argv[1:]]))
