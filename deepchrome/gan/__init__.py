"""The histone-signal GAN, built on deepchrome's data layer and run path.

Modules: :mod:`.models` (generator, discriminator, count draws), :mod:`.module` (the
LightningModule), :mod:`.checkpoint` (safe loading), :mod:`.generation`, :mod:`.quality` and
:mod:`.evaluation` (how quality is judged), :mod:`.visualize` (profiles, prototypes, the
combinatorial map), :mod:`.fitting` (training from Python: ``deepchrome.gan.fit``).
"""


def __getattr__(name: str):
    # Lazy: `import deepchrome.gan` stays cheap; these pull in Lightning.
    if name in ("fit", "fit_gan"):
        from deepchrome.gan import fitting

        return getattr(fitting, name)
    if name == "sample_release":
        from deepchrome.gan.visualize import sample_release

        return sample_release
    if name == "load_gan":
        from deepchrome.gan.checkpoint import load_gan

        return load_gan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["fit", "fit_gan", "load_gan", "sample_release"]
