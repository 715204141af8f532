"""phasic: phase-type distributions in JAX."""

__version__ = "0.1.0"
