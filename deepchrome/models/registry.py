"""The networks a checkpoint may name: an allow-list, never an import of whatever the file says.

A checkpoint records its network as ``{"class_path", "init_args"}``. Loading looks the class path
up here; anything else is refused before any module is imported or any callable is called, so a
crafted checkpoint cannot choose code to run. Networks of your own are registered explicitly::

    from deepchrome.models import register_network

    @register_network
    class MyNet(SignalNet): ...
"""

from __future__ import annotations

from deepchrome.errors import DeepChromeError
from deepchrome.models.attentivechrome import AttentiveChrome
from deepchrome.models.base import SignalNet
from deepchrome.models.cnn import DeepChromeCNN
from deepchrome.models.linear import LinearBaseline
from deepchrome.models.mlp import DeepChromeMLP

_NETWORKS: dict[str, type[SignalNet]] = {}


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_network(cls: type[SignalNet]) -> type[SignalNet]:
    """Allow checkpoints to build ``cls`` (a :class:`SignalNet` subclass); usable as a decorator."""
    if not (isinstance(cls, type) and issubclass(cls, SignalNet)):
        raise DeepChromeError(f"only SignalNet subclasses can be registered, not {cls!r}")
    _NETWORKS[_class_path(cls)] = cls
    # the short form used in configs (deepchrome.models.DeepChromeCNN) names the same class
    _NETWORKS.setdefault(f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__qualname__}", cls)
    return cls


def registered_networks() -> list[str]:
    """Class paths that checkpoints may name."""
    return sorted({_class_path(cls) for cls in _NETWORKS.values()})


def network_class(class_path: object, source: str = "checkpoint") -> type[SignalNet]:
    """The registered network class named by ``class_path``.

    Raises
    ------
    DeepChromeError
        If it is not registered (nothing is imported or called).
    """
    cls = _NETWORKS.get(class_path) if isinstance(class_path, str) else None
    if cls is None:
        raise DeepChromeError(
            f"{source} names network {str(class_path)[:200]!r}, which is not an allowed network "
            f"(allowed: {', '.join(registered_networks())}; register your own with "
            "deepchrome.models.register_network)"
        )
    return cls


def build_network(config: object, source: str = "checkpoint") -> SignalNet:
    """Build a registered network from ``{"class_path", "init_args"}`` (values must be plain data)."""
    if not isinstance(config, dict) or not isinstance(config.get("init_args", {}), dict):
        raise DeepChromeError(f"{source}: network config must be a mapping with class_path and init_args")
    cls = network_class(config.get("class_path"), source)
    try:
        return cls(**config.get("init_args", {}))
    except (TypeError, ValueError) as exc:
        raise DeepChromeError(f"{source}: cannot build {cls.__name__} ({exc})") from None


for _network in (DeepChromeCNN, LinearBaseline, DeepChromeMLP, AttentiveChrome):
    register_network(_network)
