"""Model zoo: built-in CPU models, torchvision and pytorchvideo video models."""

from dance3d.models import checkpoint as _checkpoint  # noqa: F401 - registers the "dense" checkpoint kind
from dance3d.models.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]
