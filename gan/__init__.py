"""The histone-signal GAN, built on deepchrome's data layer and run path.

Modules: :mod:`gan.models` (generator, discriminator, count draws), :mod:`gan.module` (the
LightningModule), :mod:`gan.checkpoint` (safe loading), :mod:`gan.generation`,
:mod:`gan.quality` and :mod:`gan.evaluation` (how quality is judged), :mod:`gan.visualize`
(profiles, prototypes, the combinatorial map), :mod:`gan.fitting` (training from Python: ``gan.fit``).
"""


def __getattr__(name: str):
    # Lazy: `import gan` stays cheap; these pull in Lightning.
    if name in ("fit", "fit_gan"):
        from gan import fitting

        return getattr(fitting, name)
    if name == "sample_release":
        from gan.visualize import sample_release

        return sample_release
    if name == "load_gan":
        from gan.checkpoint import load_gan

        return load_gan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["fit", "fit_gan", "load_gan", "sample_release"]
