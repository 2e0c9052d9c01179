"""The histone-signal GAN (see the GAN issue); built on deepchrome's data modules."""
