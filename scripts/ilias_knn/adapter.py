"""The ILIAS linear adaptation layer: y = normalize(x W^T + b)."""

from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import InputError


@dataclass
class Adapter:
    weight: torch.Tensor  # out x in, float32
    bias: torch.Tensor  # out, float32

    @property
    def in_dim(self):
        return self.weight.shape[1]

    @property
    def out_dim(self):
        return self.weight.shape[0]

    def to(self, device):
        return Adapter(self.weight.to(device), self.bias.to(device))

    def __call__(self, x):
        """Adapt a float32 (n x in) tensor; rows are L2-normalised afterwards."""
        y = torch.addmm(self.bias, x, self.weight.T)
        return torch.nn.functional.normalize(y, dim=1)


def load_adapter(path):
    """Load and validate a PyTorch state dict holding ``layer.weight`` and ``layer.bias``."""
    if not Path(path).is_file():
        raise InputError(f"{path}: adapter file does not exist. Check lin_adapt_path.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise InputError(
            f"{path}: cannot be loaded as a PyTorch state dict ({type(exc).__name__}: {exc}). "
            "Save the adapter with torch.save(layer.state_dict(), path)."
        ) from exc
    if not isinstance(state, dict):
        raise InputError(
            f"{path}: holds a {type(state).__name__}, not a state dict. "
            "Save it with torch.save(model.state_dict(), path)."
        )
    missing = [key for key in ("layer.weight", "layer.bias") if key not in state]
    if missing:
        raise InputError(
            f"{path}: state dict lacks {missing} (has {sorted(state)[:10]}). "
            "The adapter must be an nn.Linear stored under the name 'layer'."
        )
    weight, bias = state["layer.weight"], state["layer.bias"]
    if weight.ndim != 2 or bias.ndim != 1 or bias.shape[0] != weight.shape[0]:
        raise InputError(
            f"{path}: inconsistent shapes: layer.weight {tuple(weight.shape)}, layer.bias "
            f"{tuple(bias.shape)}; expected (out x in) and (out,)."
        )
    return Adapter(weight.float().contiguous(), bias.float().contiguous())


def check_adapter_dim(adapter, dim, adapter_path, features_path):
    if adapter.in_dim != dim:
        raise InputError(
            f"{adapter_path}: adapter expects {adapter.in_dim}-d input but {features_path} has "
            f"{dim}-d features. Use the adapter trained for this model's features."
        )
