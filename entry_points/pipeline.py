"""``mlflow run . -e pipeline -P config=...``: a whole study (the same flags as ``rose pipeline``)."""

import sys

from rose.cli import main
from rose.tracking import adopt_launcher_run

if __name__ == "__main__":
    adopt_launcher_run()
    sys.exit(main(["pipeline", *sys.argv[1:]]))
