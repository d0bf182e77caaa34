"""Trained policies as files that run without JAX or the run directory.

    jaxrl.export.onnx          export_onnx(...): write and self-verify a policy.onnx (needs JAX, jax2onnx)
    jaxrl.export.onnx_policy   OnnxPolicy(path): run one with onnxruntime and numpy alone

This module holds only the errors, so the CLI can catch them without importing
jax2onnx or onnxruntime.
"""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export that did not produce a faithful file (nothing was written); the message says why."""


class PolicyFileError(ValueError):
    """A policy file that is missing, unreadable or not a jaxrl export; the message names the fix."""


class PolicyMismatchError(ValueError):
    """A policy used with an env or observations it was not exported for."""
