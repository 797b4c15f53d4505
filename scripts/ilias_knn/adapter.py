"""The ILIAS linear adaptation layer: y = normalize(x W^T + b)."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError


@dataclass
class Adapter:
    """y = normalize(x W^T + b) on float32 rows: numpy arrays on the CPU, torch
    tensors on a device (torch is imported only for those, and to load the file)."""

    weight: np.ndarray  # out x in, float32
    bias: np.ndarray  # out, float32
    _on_device: dict = field(default_factory=dict, repr=False)

    @property
    def in_dim(self):
        return self.weight.shape[1]

    @property
    def out_dim(self):
        return self.weight.shape[0]

    def to(self, device):
        """Place the weights on ``device`` once (for torch inputs); returns self."""
        self._device_weights(device)
        return self

    def _device_weights(self, device):
        key = str(device)
        if key not in self._on_device:
            import torch

            self._on_device[key] = (torch.from_numpy(self.weight).to(device), torch.from_numpy(self.bias).to(device))
        return self._on_device[key]

    def apply_numpy(self, x):
        y = np.matmul(x, self.weight.T)
        y += self.bias
        y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)  # as torch's normalize
        return y

    def __call__(self, x):
        """Adapt float32 rows (n x in), a numpy array or a torch tensor."""
        if isinstance(x, np.ndarray):
            return self.apply_numpy(x)
        import torch

        weight, bias = self._device_weights(x.device)
        return torch.nn.functional.normalize(torch.addmm(bias, x, weight.T), dim=1)


def load_adapter(path):
    """Load and validate a PyTorch state dict holding ``layer.weight`` and ``layer.bias``."""
    if not Path(path).is_file():
        raise InputError(f"{path}: adapter file does not exist. Check lin_adapt_path.")
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        # (torch's own message is a paragraph on weights_only, which is no fix here)
        raise InputError(
            f"{path}: cannot be loaded as a PyTorch state dict ({type(exc).__name__}). "
            "Save the adapter with torch.save(layer.state_dict(), path)."
        ) from None
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
    adapter = Adapter(weight.float().contiguous().numpy(), bias.float().contiguous().numpy())
    bad = [
        name
        for name, value in (("layer.weight", adapter.weight), ("layer.bias", adapter.bias))
        if not np.isfinite(value).all()
    ]
    if bad:  # else every adapted score is NaN, and the shard files would be blamed
        verb = "holds" if len(bad) == 1 else "hold"
        raise InputError(f"{path}: {' and '.join(bad)} {verb} NaN or inf. Re-train or re-save the adapter.")
    return adapter


def check_adapter_dim(adapter, dim, adapter_path, features_path):
    if adapter.in_dim != dim:
        raise InputError(
            f"{adapter_path}: adapter expects {adapter.in_dim}-d input but {features_path} has "
            f"{dim}-d features. Use the adapter trained for this model's features."
        )
