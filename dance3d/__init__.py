"""dance3d: input-adaptive pruning of 3D CNNs for video.

Importing this package is cheap: it loads neither optuna nor matplotlib and does not touch CUDA.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
