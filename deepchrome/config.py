"""Training configs: packaged names, YAML files or dicts, dotted overrides, and where paths point.

A training config is the LightningCLI YAML that ``deepchrome fit --config`` takes (sections
``trainer``, ``model``, ``data``, ``seed_everything``). Sources:

- a packaged name (``"deepchrome"``, ``"linear"``, ``"sweeps/cnn"``): a file under
  ``deepchrome/configs/``, installed with the package;
- a YAML path;
- a dict (already loaded).

**Paths.** Input paths written in a config file (``data.root``, ``data.cache_dir``,
``model.classifier_checkpoint``) resolve relative to that file, so a config and its data travel
together and packaged configs find the bundled example wherever the package is installed. Output
folders (``trainer.default_root_dir``) and every path given as an override (command line or
Python) resolve relative to the working directory.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import os
from pathlib import Path

import yaml

from deepchrome.errors import DeepChromeError

#: Packaged configs, installed with the package.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: Input paths of a training config, resolved relative to the file that names them.
INPUT_PATHS = ("data.root", "data.cache_dir", "model.classifier_checkpoint")
#: Output paths: relative to the working directory wherever they are written.
OUTPUT_PATHS = ("trainer.default_root_dir",)
SECTIONS = {
    "trainer": "lightning.pytorch.Trainer",
    "data": "deepchrome.data.datamodule.HistoneDataModule",
    "model": "deepchrome.training.ExpressionClassifier",
}


def packaged_configs() -> list[str]:
    """Names of the packaged configs (``deepchrome``, ``sweeps/cnn``, ...)."""
    return sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yaml"))


def config_path(source: str | os.PathLike) -> Path:
    """The file a config source names: an existing path, else a packaged config of that name.

    Raises
    ------
    DeepChromeError
        If neither exists (the message lists the packaged names), or ``source`` is a folder, a
        device (``/dev/null``) or a pipe rather than a regular file.
    """
    path = Path(source)
    if path.is_file():
        return path.resolve()
    name = str(source).removesuffix(".yaml").removeprefix("configs/")
    packaged = CONFIG_DIR / f"{name}.yaml"
    if packaged.is_file():
        return packaged
    names = ", ".join(packaged_configs())
    if path.exists():
        kind = "is a folder" if path.is_dir() else "is not a regular file (a device or a pipe: no settings to read)"
        raise DeepChromeError(f"config {source}: {kind}; give a YAML file or a packaged config ({names})")
    raise DeepChromeError(f"config {source} not found: not a file, nor a packaged config ({names})")


def read_yaml(path: Path) -> dict:
    """A YAML mapping from ``path``, with one-line errors for unreadable or non-mapping files."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise DeepChromeError(f"{where}: not valid YAML ({problem})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeepChromeError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DeepChromeError(f"{path}: expected a mapping of settings, found a {type(data).__name__}")
    return data


def read_settings(source: str | os.PathLike | dict, known: tuple[str, ...], what: str) -> tuple[dict, str, Path]:
    """A settings mapping (sweep or experiment config) from a file, a packaged name or a dict.

    Returns
    -------
    settings, where, folder
        A copy of the settings; how to name the source in messages; the folder that relative
        paths in it are taken from (the file's, or the working directory for a dict).

    Raises
    ------
    DeepChromeError
        For a missing or unreadable file, or keys outside ``known`` (a typo is never ignored).
    """
    if isinstance(source, dict):
        settings, where, folder = copy.deepcopy(source), what, Path.cwd()
    else:
        path = config_path(source)
        settings, where, folder = read_yaml(path), str(source), path.parent
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise DeepChromeError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return settings, where, folder


#: What each kind of setting must be, and how messages name it.
SETTING_KINDS = {
    "text": ((str,), "a text"),
    "path": ((str,), "a path"),
    "mapping": ((dict,), "a mapping (key: value lines)"),
    "list": ((list,), "a list ([a, b])"),
    "whole": ((int,), "a whole number"),
    "number": ((int, float), "a number"),
}


def check_setting_types(settings: dict, kinds: dict[str, str], where: str) -> None:
    """Refuse settings of the wrong type (``search_space: [1, 2]``, ``k_random: x``) before they are used.

    ``kinds`` maps a key to one of :data:`SETTING_KINDS` (``"mapping"``, ``"whole"``...), or to
    ``"path or mapping"`` style alternatives joined by `` or ``; absent keys and ``null`` pass.

    Raises
    ------
    DeepChromeError
        ``WHERE: search_space must be a mapping (key: value lines), got a list: [1, 2]``.
    """
    for key, kind in kinds.items():
        value = settings.get(key)
        if value is None:
            continue
        options = [SETTING_KINDS[name] for name in kind.split(" or ")]
        if isinstance(value, bool) or not any(isinstance(value, types) for types, _ in options):
            expected = " or ".join(text for _, text in options)
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise DeepChromeError(f"{where}: {key} must be {expected}, got a {type(value).__name__}: {shown}")


def load_config(
    source: str | os.PathLike | dict,
    overrides: dict | None = None,
    where: str = "overrides",
) -> dict:
    """A training config as a dict, input paths absolute, with dotted ``overrides`` applied.

    Parameters
    ----------
    source
        Packaged name, YAML path or dict (a dict's relative paths are taken from the working
        directory).
    overrides
        ``{"data.root": "data/example", "trainer.max_epochs": 3}``: each path is checked against
        the config and the classes' arguments first (errors name ``where``); relative paths in
        them resolve against the working directory.

    Returns
    -------
    dict
        A new dict (the source is not modified).
    """
    if isinstance(source, dict):
        config = copy.deepcopy(source)
        resolve_input_paths(config, Path.cwd())
    else:
        path = config_path(source)
        config = read_yaml(path)
        resolve_input_paths(config, path.parent)
    apply_overrides(config, overrides, where, Path.cwd())
    return config


def apply_overrides(config: dict, overrides: dict | None, where: str, base: Path) -> dict:
    """Set each dotted path of ``overrides`` (checked first); relative input paths resolve against ``base``."""
    for dotted, value in (overrides or {}).items():
        check_path(config, dotted, where)
        if dotted in INPUT_PATHS and isinstance(value, str | os.PathLike) and os.fspath(value):
            value = absolute_input(value, base)
        set_path(config, dotted, value)
    return config


def resolve_input_paths(config: dict, base: Path) -> dict:
    """Make the relative input paths of ``config`` absolute against ``base`` (in place)."""
    for dotted in INPUT_PATHS:
        value = get_path(config, dotted)
        if isinstance(value, str) and value:
            set_path(config, dotted, absolute_input(value, base))
    return config


def absolute_input(value: str | os.PathLike, base: Path) -> str:
    """``value`` as an absolute path relative to ``base``; ``data/example`` that is not there means
    the bundled example (:func:`deepchrome.data.example.resolve_root`)."""
    from deepchrome.data.example import resolve_root

    return str(resolve_root(value, base).resolve())


def _class_parameters(class_path: str) -> set[str] | None:
    try:
        module, name = class_path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return {p for p in inspect.signature(cls.__init__).parameters if p != "self"}


def check_path(config: dict, dotted: str, where: str) -> None:
    """Raise unless ``dotted`` names a key of ``config``, an argument of the Trainer, data module or
    model (``trainer.min_epochs``), or an init argument of a ``class_path`` in it."""
    if dotted == "seed_everything":
        return
    node = config
    parts = dotted.split(".")
    if len(parts) == 2 and parts[0] in SECTIONS and parts[1] in (_class_parameters(SECTIONS[parts[0]]) or ()):
        return
    for depth, key in enumerate(parts):
        if isinstance(node, dict) and key in node:
            node = node[key]
            continue
        parent = node if isinstance(node, dict) else None
        if depth and parts[depth - 1] == "init_args" and parent is not None:
            grand = get_path(config, ".".join(parts[: depth - 1]))
            allowed = _class_parameters(grand.get("class_path", "")) if isinstance(grand, dict) else None
            if allowed is not None and key in allowed and depth == len(parts) - 1:
                return
        if key == "init_args" and isinstance(node, dict) and "class_path" in node and depth == len(parts) - 2:
            allowed = _class_parameters(node["class_path"])
            if allowed is not None and parts[-1] in allowed:
                return
        raise DeepChromeError(f"{where}: {dotted} is not a path in the config (no {key!r} there)")


def get_path(config: dict, dotted: str):
    """Value at a dotted path (``None`` if absent)."""
    node = config
    for key in dotted.split(".") if dotted else []:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def set_path(config: dict, dotted: str, value) -> None:
    """Set a dotted path, creating ``init_args`` dicts as needed; a new ``class_path`` drops the old
    class's ``init_args`` (they belong to another class)."""
    parts = dotted.split(".")
    node = config
    for key in parts[:-1]:
        node = node.setdefault(key, {})
    if parts[-1] == "class_path" and node.get("class_path") != value:
        node["init_args"] = {}
    node[parts[-1]] = value


#: Packages whose classes a config may name (``class_path``); modules already imported are allowed
#: too, since importing them again runs no code.
CLASS_PACKAGES = ("torch", "lightning", "torchmetrics", "deepchrome")


def trusted_packages() -> tuple[str, ...]:
    """The packages a config's ``class_path`` may import: :data:`CLASS_PACKAGES` and those named in
    ``DEEPCHROME_TRUSTED_MODULES`` (comma-separated; one's own callbacks and networks, by the user's choice).

    Returns
    -------
    tuple of str
        Top-level package names.
    """
    return CLASS_PACKAGES + tuple(filter(None, os.environ.get("DEEPCHROME_TRUSTED_MODULES", "").split(",")))


@contextlib.contextmanager
def restricted_imports():
    """Within the block, a ``class_path`` that jsonargparse would import must come from
    :data:`CLASS_PACKAGES`, a package named in ``DEEPCHROME_TRUSTED_MODULES`` (comma-separated) or a
    module already imported: importing a module runs its code, and a config (perhaps from someone
    else) must not choose what code runs.

    Raises
    ------
    DeepChromeError
        For a class path in any other module, before it is imported.
    """
    import sys

    modules = [importlib.import_module(f"jsonargparse.{name}") for name in ("_util", "_typehints", "_actions")]
    originals = [module.import_object for module in modules]
    original = originals[0]

    trusted = trusted_packages()

    def import_object(name, *args, **kwargs):
        if isinstance(name, str) and "." in name:
            package = name.split(".")[0]
            module_name = name.rsplit(".", 1)[0]
            if package not in trusted and module_name not in sys.modules and name not in sys.modules:
                raise DeepChromeError(
                    f"class_path {name!r}: a config may name classes of {', '.join(CLASS_PACKAGES)} (or modules "
                    "already loaded), not import other modules"
                )
        return original(name, *args, **kwargs)

    for module in modules:
        module.import_object = import_object
    try:
        yield
    finally:
        for module, saved in zip(modules, originals, strict=True):
            module.import_object = saved


def check_whole_number(option: str, value, least: int, most: int | None = None) -> int:
    """``value`` if it is a whole number in [least, most], else a one-line DeepChromeError naming ``option``
    (an upper bound keeps numbers that no C integer holds, or no run finishes, out of torch and numpy)."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise DeepChromeError(f"{option} {value!r}: must be a whole number >= {least}")
    if most is not None and value > most:
        raise DeepChromeError(f"{option} {value!r}: must be at most {most}")
    return int(value)
