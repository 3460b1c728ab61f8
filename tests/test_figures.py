"""Plotting draws through the object API: the caller's matplotlib backend and pyplot state stay as they were."""

import os
import subprocess
import sys

SCRIPT = """
import sys
from pathlib import Path

import matplotlib
import pandas as pd
from dance3d.dance.plots import plot_tradeoff
from dance3d.reporting import plot_training_curve
from studies.plots import plot_hypervolume

out = sys.argv[1]
plot_tradeoff({"aap": [(0.5, 0.9), (0.3, 0.8)]}, out + "/tradeoff.png", dense_top1=0.95)
plot_training_curve([{"epoch": 1, "train_loss": 1.0, "train_top1": 0.5}], Path(out + "/c.png"))
series = pd.DataFrame({"number": [0, 1, 2], "hypervolume": [0.1, 0.2, 0.4]})
paths = plot_hypervolume(series, Path(out), objectives=["accuracy", "mac_fraction"])
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules, len(paths))
"""


def test_plotting_leaves_the_backend_and_pyplot_alone(tmp_path):
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["svg", "False", "2"]
    for name in ("tradeoff.png", "c.png", "hypervolume.png", "hypervolume.svg"):
        assert (tmp_path / name).read_bytes()[:4] in (b"\x89PNG", b"<?xm"), name
