"""One shape of error message at every public boundary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdlcore._backend import as_compute_tensor
from hdlcore._validation import (
    _memory_bytes,
    check_array,
    check_choice,
    check_devices,
    check_mask,
    check_scalar,
    check_size,
)


@pytest.mark.parametrize(
    "value, exc, message",
    [
        (-1.0, ValueError, "The 'lam' parameter of solve_convex must be a float > 0. Got -1.0 instead."),
        (0, ValueError, "Got 0.0 instead."),
        (float("nan"), ValueError, "Got nan instead."),
        (float("inf"), ValueError, "must be a finite float > 0"),
        ("1", TypeError, "Got '1' instead."),
        (True, TypeError, "Got True instead."),
        (np.ones(2), TypeError, "an array of shape (2,)"),
    ],
)
def test_check_scalar_messages(value, exc, message):
    with pytest.raises(exc) as info:
        check_scalar(value, "lam", "solve_convex", gt=0)
    assert message in str(info.value)


def test_check_scalar_accepts_numpy_and_tensor_scalars():
    assert check_scalar(np.float32(0.5), "keep", "f", gt=0, le=1) == 0.5
    assert check_scalar(torch.tensor(2), "rank", "f", kind="int", ge=1) == 2
    with pytest.raises(ValueError, match="an int >= 1. Got 0 instead"):
        check_scalar(0, "rank", "f", kind="int", ge=1)
    with pytest.raises(TypeError):
        check_scalar(1.5, "rank", "f", kind="int")


def test_check_array_shapes_and_finiteness():
    with pytest.raises(ValueError, match="must be a 2-D array"):
        check_array(np.ones(3), "Y", "f")
    with pytest.raises(ValueError, match="finite"):
        check_array(np.array([[1.0, np.nan]]), "Y", "f")
    with pytest.raises(ValueError, match="finite"):
        check_array(torch.tensor([[1.0, float("inf")]]), "Y", "f")
    with pytest.raises(ValueError, match=r"shape \(any, 3\)"):
        check_array(np.ones((2, 2)), "V", "f", shape=(None, 3))
    with pytest.raises(ValueError, match="at least 1 entries"):
        check_array(np.ones((0, 3)), "Y", "f")
    with pytest.raises(TypeError, match="a numpy array or a torch tensor"):
        check_array("abc", "Y", "f")
    assert check_array(np.ones((2, 2), dtype=int), "Y", "f").dtype == np.float64
    assert check_array([[1, 2]], "Y", "f").shape == (1, 2)


def test_check_mask():
    with pytest.raises(ValueError, match="at least one observed"):
        check_mask(np.zeros((2, 2), bool), (2, 2), "mask", "f")
    with pytest.raises(ValueError, match=r"a mask of shape \(2, 2\)"):
        check_mask(np.ones((2, 3), bool), (2, 2), "mask", "f")
    with pytest.raises(ValueError, match="boolean mask"):
        check_mask(np.full((2, 2), 0.5), (2, 2), "mask", "f")
    assert check_mask(np.eye(2), (2, 2), "mask", "f").dtype == bool
    assert check_mask(torch.eye(2), (2, 2), "mask", "f").dtype == torch.bool


def test_check_choice():
    with pytest.raises(ValueError, match="must be one of 'l2', 'l1'. Got 'l3' instead"):
        check_choice("l3", "norms", "f", ["l2", "l1"])


def test_check_array_refuses_complex_unless_asked():
    for Z in (np.ones((2, 2), complex), torch.ones(2, 2, dtype=torch.complex64)):
        with pytest.raises(TypeError, match=r"The 'Z' parameter of f must be a real array \(not complex\)"):
            check_array(Z, "Z", "f")
        assert check_array(Z, "Z", "f", real=False) is Z


def test_check_devices_names_both_parameters():
    check_devices("f", {"Y": np.ones(2), "U": torch.ones(2), "V": None})  # numpy counts as the CPU
    with pytest.raises(ValueError, match=r"The 'U' parameter of f must be on the same device as 'Y' "
                                         r"\(cpu\)\. Got .* on meta instead"):
        check_devices("f", {"Y": torch.ones(2), "U": torch.ones(2, device="meta")})
    with pytest.raises(ValueError, match=r"The 'weights' parameter of f .* as 'weights'"):
        check_devices("f", {"weights": [torch.ones(2), torch.ones(2, device="meta")]})


def test_check_size_refuses_what_cannot_fit_before_allocating():
    assert check_size(10, "rank", "f", entries_per_unit=7) == 10
    memory = _memory_bytes()
    too_many = int(memory // 8) + 1  # one float64 entry more than the machine holds
    with pytest.raises(ValueError, match=r"The 'rank' parameter of f must be an int >= 1 whose arrays fit "
                                         r"in memory"):
        check_size(too_many, "rank", "f")
    with pytest.raises(ValueError, match=r"The 'd' parameter of f must be an int >= 1"):
        check_size(0, "d", "f")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32_and_returned_in_its_dtype(dtype):
    x = torch.tensor([[1.5, -2.0]], dtype=dtype)
    t, back = as_compute_tensor(x)
    assert t.dtype == torch.float32 and torch.equal(t, x.float())
    out = back((2 * t, [t]))
    assert out[0].dtype == dtype and torch.equal(out[0], 2 * x) and out[1][0].dtype == dtype
    t, back = as_compute_tensor(x.numpy() if dtype == torch.float16 else np.ones(2))  # numpy float16
    out = back(t)
    assert isinstance(out, np.ndarray) and out.dtype == (np.float16 if dtype == torch.float16 else np.float64)
