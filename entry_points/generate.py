"""``mlflow run . -e generate``: the generate stage with the MLproject's parameters (the same names as ``rose generate``).

``mlflow run`` starts a launcher run; rose writes its own run (one per candidate, task and language) into the
study's experiment, so the launcher run is detached first.
"""

import sys

from rose.cli import main
from rose.tracking import adopt_launcher_run

if __name__ == "__main__":
    adopt_launcher_run()
    sys.exit(main(["generate", *sys.argv[1:]]))
