"""``mlflow run .``: the offline demo (configs/demo.yaml), after making sure the offline models are ready."""

import sys

from rose.cli import main
from rose.tracking import adopt_launcher_run

if __name__ == "__main__":
    adopt_launcher_run()
    code = main(["assets", "fetch"])
    sys.exit(code or main(["pipeline", "--config", "configs/demo.yaml", *sys.argv[1:]]))
