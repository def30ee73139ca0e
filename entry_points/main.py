"""``mlflow run .``: the offline demo (configs/demo.yaml), after making sure the offline models are ready.

The run ``mlflow run`` started is the study's pipeline run and the parent of the runs the study starts (when it is
in the study's experiment, ``mlflow run . --experiment-name rose-demo``).
"""

import sys

from rose.cli import launched

if __name__ == "__main__":
    sys.exit(launched("pipeline", ["assets", "fetch"], ["pipeline", "--config", "configs/demo.yaml", *sys.argv[1:]]))
