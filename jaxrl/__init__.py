"""jaxrl: JAX-accelerated, massively parallel robot learning."""

__version__ = "0.1.0"
