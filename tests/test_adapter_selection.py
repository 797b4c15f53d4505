"""Adapter (x W^T + b, normalised) and mini-ILIAS selection against numpy."""

import numpy as np
import pytest
import torch

from ilias_knn.adapter import load_adapter
from ilias_knn.demo import write_adapter
from ilias_knn.errors import InputError
from ilias_knn.selection import load_selected_ids, selection_mask


def test_adapter_matches_numpy_with_in_ne_out(tmp_path):
    path = tmp_path / "a.pth"
    write_adapter(path, 16, 7, seed=1)
    adapter = load_adapter(path)
    x = np.random.default_rng(0).standard_normal((5, 16))
    state = torch.load(path, weights_only=True)
    y = x @ state["layer.weight"].double().numpy().T + state["layer.bias"].double().numpy()
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    got = adapter(torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(got, y, atol=1e-5)
    assert (adapter.in_dim, adapter.out_dim) == (16, 7)


@pytest.mark.parametrize(
    "content,message",
    [
        ("not a dict", "not a state dict"),
        ({"weight": torch.ones(2, 2)}, r"lacks \['layer.weight', 'layer.bias'\]"),
        ({"layer.weight": torch.ones(3, 2), "layer.bias": torch.ones(2)}, "inconsistent shapes"),
    ],
)
def test_bad_adapters(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    torch.save(content, path)
    with pytest.raises(InputError, match=message):
        load_adapter(path)


def test_adapter_not_torch_file(tmp_path):
    path = tmp_path / "x.pth"
    path.write_text("garbage")
    with pytest.raises(InputError, match="cannot be loaded as a PyTorch state dict"):
        load_adapter(path)


def test_selection_by_full_id_or_suffix(tmp_path):
    path = tmp_path / "sel.txt"
    path.write_text("b.jpg\nsrc/c.jpg\n\nx/y/z\n")
    selected = load_selected_ids(path)
    ids = ["src/a.jpg", "src/b.jpg", "src/c.jpg", "b.jpg", "x/y/z", "w/x/y/z", "other/c.jpg"]
    assert selection_mask(ids, selected).tolist() == [False, True, True, True, True, True, False]


def test_empty_selection_is_an_error(tmp_path):
    path = tmp_path / "sel.txt"
    path.write_text("\n\n")
    with pytest.raises(InputError, match="is empty"):
        load_selected_ids(path)


def test_selection_with_crlf_lines_matches(tmp_path):
    path = tmp_path / "sel.txt"
    path.write_bytes(b"src/a.jpg\r\nb.jpg\r\n")
    assert load_selected_ids(path).tolist() == ["b.jpg", "src/a.jpg"]


def test_selection_not_ascii_names_its_line(tmp_path):
    path = tmp_path / "sel.txt"
    path.write_bytes("a.jpg\n\nb.jpg\ncaf\u00e9.jpg\nd.jpg\n".encode())
    with pytest.raises(InputError, match=r"sel.txt: line 4 is not ASCII"):
        load_selected_ids(path)
