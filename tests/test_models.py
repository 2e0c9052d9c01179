"""Networks: exact parameter counts, sizes derived from data, hand-set weights, bad options."""

from __future__ import annotations

import pytest
import torch

from deepchrome.errors import DeepChromeError
from deepchrome.models import (
    AttentiveChrome,
    DeepChromeCNN,
    DeepChromeMLP,
    LinearBaseline,
    aggregate_bins,
    count_parameters,
)


def test_deepchrome_cnn_has_paper_parameter_count():
    net = DeepChromeCNN(n_marks=5, n_bins=100)
    assert count_parameters(net) == 644_177
    assert net.classifier[0].in_features == 900
    assert net(torch.rand(4, 5, 100)).shape == (4, 2)


def test_cnn_sizes_are_derived_from_the_data():
    net = DeepChromeCNN(n_marks=3, n_bins=200, kernel_size=5, pool="avg", pool_size=4, hidden=[32])
    # conv 200 - 5 + 1 = 196 positions, pooled by 4 -> 49 x 50 channels
    assert net.classifier[0].in_features == 49 * 50
    assert net(torch.rand(2, 3, 200)).shape == (2, 2)
    assert isinstance(net.features[2], torch.nn.AvgPool1d)


def test_linear_baseline_has_twelve_parameters():
    assert count_parameters(LinearBaseline(n_marks=5, n_bins=100)) == 12


def test_linear_baseline_hand_set_weights_give_exact_logits():
    net = LinearBaseline(aggregate="max", n_marks=2, n_bins=4)
    net.fit_scale([torch.tensor([[[1.0, 4.0, 2.0, 0.0], [0.0, 1.0, 1.0, 2.0]]])])
    assert net.scale.tolist() == [4.0, 2.0]
    with torch.no_grad():
        net.linear.weight.copy_(torch.tensor([[1.0, 0.0], [2.0, -1.0]]))
        net.linear.bias.copy_(torch.tensor([0.5, -0.5]))
    x = torch.tensor([[[2.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]])
    # features: max / scale = [2/4, 1/2]; logits = W f + b
    assert net(x).tolist() == [[1.0, 0.0]]


def test_linear_score_does_not_depend_on_batch_mates():
    net = LinearBaseline(aggregate="sum", n_marks=5, n_bins=100)
    net.fit_scale([torch.rand(50, 5, 100)])
    gene = torch.rand(1, 5, 100)
    alone = net(gene)
    with_big_neighbour = net(torch.cat([gene, 100 * torch.rand(7, 5, 100)]))[:1]
    assert torch.allclose(alone, with_big_neighbour)


@pytest.mark.parametrize("how", ["max", "sum", "mean", "median", "min"])
def test_aggregates(how):
    x = torch.tensor([[[3.0, 1.0, 2.0]]])
    expected = {"max": 3.0, "sum": 6.0, "mean": 2.0, "median": 2.0, "min": 1.0}[how]
    assert aggregate_bins(x, how).item() == expected


def test_unknown_aggregate_is_a_user_error():
    with pytest.raises(DeepChromeError, match="unknown aggregate 'mode'.*available: max, sum, mean, median, min"):
        LinearBaseline(aggregate="mode")


def test_build_refuses_another_shape():
    net = DeepChromeCNN(n_marks=5, n_bins=100)
    with pytest.raises(DeepChromeError, match="expects 5 marks x 100 bins, the data has 3 marks x 100 bins"):
        net.build(3, 100)


def test_lazy_build_and_config_round_trip():
    net = DeepChromeMLP(hidden=[16], dropout=0.1)
    assert not net.built
    net.build(5, 100)
    config = net.config()
    assert config["class_path"] == "deepchrome.models.mlp.DeepChromeMLP"
    assert config["init_args"] == {"hidden": [16], "dropout": 0.1, "n_marks": 5, "n_bins": 100}
    again = DeepChromeMLP(**config["init_args"])
    assert count_parameters(again) == count_parameters(net) == 500 * 16 + 16 + 16 * 2 + 2


def test_attentivechrome_attention_is_normalized():
    net = AttentiveChrome(n_marks=5, n_bins=100).eval()
    logits = net(torch.rand(3, 5, 100))
    assert logits.shape == (3, 2)
    assert net.bin_attention.shape == (3, 5, 100)
    assert torch.allclose(net.bin_attention.sum(-1), torch.ones(3, 5))
    assert torch.allclose(net.mark_attention.sum(-1), torch.ones(3))


@pytest.mark.parametrize("options", [{}, {"pool": "avg"}, {"channels": 20, "kernel_size": 7, "pool_size": 3,
                                                         "pool_stride": 2, "hidden": [64]}])  # fmt: skip
def test_cnn_fast_forward_is_the_declared_layers(options):
    """DeepChromeCNN.forward (unfold + matmul, channels-last pooling) computes the declared layers'
    function: the same logits, gradients and dropout masks up to float rounding."""
    torch.manual_seed(0)
    net = DeepChromeCNN(n_marks=5, n_bins=100, **options)
    x = torch.rand(64, 5, 100).log1p()
    y = torch.randint(0, 2, (64,))
    grads = []
    for forward in (net.forward, net.reference_forward):
        net.zero_grad()
        torch.manual_seed(1)  # the same dropout draws
        logits = forward(x)
        torch.nn.functional.cross_entropy(logits, y).backward()
        grads.append((logits.detach(), [p.grad.clone() for p in net.parameters()]))
    (fast, fast_grads), (slow, slow_grads) = grads
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    net.eval()
    torch.testing.assert_close(net(x), net.reference_forward(x), rtol=1e-5, atol=1e-6)
