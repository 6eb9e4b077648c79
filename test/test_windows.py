"""Whole-volume evaluation through blended windows, against MONAI's sliding_window_inference."""

import pytest
import torch
from monai.inferers import sliding_window_inference

from model.execution.windows import evaluate_in_windows, plan_windows


@pytest.mark.parametrize("shape", [(45, 37, 19), (10, 37, 5), (16, 16, 8)])
@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.7])
def test_matches_monai_sliding_window(shape, overlap):
    torch.manual_seed(0)
    net = torch.nn.Conv3d(3, 2, 3, padding=1)
    x = torch.randn(1, 3, *shape)
    with torch.no_grad():
        expected = sliding_window_inference(x, (16, 16, 8), 3, net, overlap=overlap, mode="gaussian")
        ours = evaluate_in_windows(net, x, plan_windows(shape, (16, 16, 8), overlap), windows_per_batch=5)
    assert ours.shape == expected.shape
    assert torch.allclose(ours, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(37, 29, 13), (7, 50, 3), (16, 16, 8)])
def test_identity_network_gives_back_its_input(shape):
    """Including axes shorter than the window (padded, then cropped back)."""
    x = torch.randn(1, 3, *shape)
    plan = plan_windows(shape, (16, 16, 8), 0.7)
    out = evaluate_in_windows(lambda batch: batch, x, plan, windows_per_batch=4)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x)  # float32 precision of a weighted mean of up to ~100 windows


def test_window_count_follows_the_grid():
    # x: 45 -> starts 0,4,...,29 at step int(16*0.3)=4, last clipped to 29: ceil(29/4)+1 = 9
    # y: 37 -> ceil(21/4)+1 = 7; z: 19 -> step int(8*0.3)=2, ceil(11/2)+1 = 7
    assert plan_windows((45, 37, 19), (16, 16, 8), 0.7).num_windows == 9 * 7 * 7
    assert plan_windows((16, 16, 8), (16, 16, 8), 0.7).num_windows == 1


def test_batching_does_not_change_the_result():
    torch.manual_seed(1)
    net = torch.nn.Conv3d(3, 3, 3, padding=1)
    x = torch.randn(1, 3, 30, 20, 12)
    plan = plan_windows(x.shape[2:], (16, 16, 8), 0.5)
    with torch.no_grad():
        one = evaluate_in_windows(net, x, plan, windows_per_batch=1)
        many = evaluate_in_windows(net, x, plan, windows_per_batch=7)
    assert torch.allclose(one, many, atol=1e-6)


def test_bad_overlap_and_shape_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        plan_windows((10, 10, 10), (8, 8, 8), 1.0)
    plan = plan_windows((10, 10, 10), (8, 8, 8), 0.5)
    with pytest.raises(ValueError, match="does not match"):
        evaluate_in_windows(lambda b: b, torch.zeros(1, 3, 9, 10, 10), plan)


# --- speed levers: reused buffers with full batches, shifted grids (docs/speed.md) -----------------

from model.execution.windows import WindowBuffers, random_shift  # noqa: E402


@pytest.mark.parametrize("channels_last", [False, True])
def test_buffers_and_full_batches_give_the_same_result(channels_last):
    torch.manual_seed(2)
    net = torch.nn.Conv3d(3, 2, 3, padding=1)
    x = torch.randn(1, 3, 30, 20, 12)
    plan = plan_windows(x.shape[2:], (16, 16, 8), 0.5)  # 3 x 2 x 2 = 12 windows: batches of 5, 5, 2 (+3 filler)
    sizes = []

    def counted(batch):
        sizes.append(batch.shape[0])
        return net(batch)

    buffers = WindowBuffers()
    with torch.no_grad():
        expected = evaluate_in_windows(net, x, plan, windows_per_batch=1)
        first = evaluate_in_windows(counted, x, plan, 5, buffers=buffers, channels_last=channels_last)
        again = evaluate_in_windows(counted, x, plan, 5, buffers=buffers, channels_last=channels_last)
    assert sizes == [5] * 6  # every call the same shape, the last batch filled up
    torch.testing.assert_close(first, expected, atol=1e-6, rtol=0)
    assert torch.equal(first, again)


@pytest.mark.parametrize("shape", [(37, 29, 13), (7, 50, 3)])
@pytest.mark.parametrize("shift", [(3, 5, 2), (15, 0, 7)])
def test_shifted_grid_gives_back_the_input_for_an_identity_network(shape, shift):
    x = torch.randn(1, 3, *shape)
    plan = plan_windows(shape, (16, 16, 8), 0.25)
    out = evaluate_in_windows(lambda batch: batch, x, plan, 4, shift=shift, buffers=WindowBuffers())
    torch.testing.assert_close(out, x)


def test_shifted_grid_of_a_pointwise_network_changes_nothing():
    """A 1x1x1 network does not care where the seams are: shifting the grid only moves them."""
    torch.manual_seed(3)
    net = torch.nn.Conv3d(3, 2, 1)
    x = torch.randn(1, 3, 40, 30, 20)
    plan = plan_windows(x.shape[2:], (16, 16, 8), 0.0)
    with torch.no_grad():
        plain = evaluate_in_windows(net, x, plan, 4)
        shifted = evaluate_in_windows(net, x, plan, 4, shift=(5, 9, 3))
    torch.testing.assert_close(shifted, plain, atol=1e-5, rtol=0)


def test_shifted_grid_moves_the_seams():
    """A network that sees its window's position (here: the window mean) gives a different blend."""
    x = torch.randn(1, 1, 40, 30, 20)
    plan = plan_windows(x.shape[2:], (16, 16, 8), 0.0)
    window_mean = lambda batch: batch.mean(dim=(2, 3, 4), keepdim=True).expand_as(batch)  # noqa: E731
    plain = evaluate_in_windows(window_mean, x, plan, 4)
    shifted = evaluate_in_windows(window_mean, x, plan, 4, shift=(5, 9, 3))
    assert not torch.allclose(plain, shifted)


def test_random_shift_is_seeded_and_within_one_step():
    plan = plan_windows((197, 233, 189), (128, 128, 32), 0.25)
    shifts = [random_shift(plan, seed=0, index=i) for i in range(50)]
    assert shifts == [random_shift(plan, seed=0, index=i) for i in range(50)]
    assert shifts != [random_shift(plan, seed=1, index=i) for i in range(50)]
    assert all(0 <= s < step for shift in shifts for s, step in zip(shift, plan.interval))
    assert len(set(shifts)) > 40
    single = plan_windows((100, 60, 20), (128, 128, 32), 0.25)  # one window per axis: nothing to shift
    assert random_shift(single, seed=0, index=3) == (0, 0, 0)
