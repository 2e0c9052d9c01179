"""Classifier networks: plain ``nn.Module``s over signals [batch, marks, bins] -> logits [batch, 2]."""

from deepchrome.models.attentivechrome import AttentiveChrome
from deepchrome.models.base import SignalNet, count_parameters
from deepchrome.models.cnn import DeepChromeCNN
from deepchrome.models.linear import AGGREGATES, LinearBaseline, aggregate_bins
from deepchrome.models.mlp import DeepChromeMLP
from deepchrome.models.registry import build_network, register_network, registered_networks

__all__ = [
    "AGGREGATES",
    "AttentiveChrome",
    "DeepChromeCNN",
    "DeepChromeMLP",
    "LinearBaseline",
    "SignalNet",
    "aggregate_bins",
    "build_network",
    "count_parameters",
    "register_network",
    "registered_networks",
]
