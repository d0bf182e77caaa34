"""Shaping kernels shared by the environments' reward terms (NumPy or JAX arrays)."""

from envs_mjx.core import array_module


def tolerance(x, lower=0.0, upper=0.0, margin=0.0, sigmoid="gaussian", value_at_margin=0.1):
    """1 inside [lower, upper], decaying with distance outside it.

    At `margin` beyond the bounds the value is `value_at_margin`. "gaussian"
    never reaches zero; "quadratic" reaches zero at the margin (and needs
    value_at_margin=0 to mean that). With margin 0 it is a plain indicator.
    """
    xp = array_module(x)
    inside = (x >= lower) & (x <= upper)
    if margin == 0:
        return xp.where(inside, 1.0, 0.0)
    distance = xp.where(x < lower, lower - x, x - upper) / margin
    if sigmoid == "gaussian":
        scale = xp.sqrt(-2.0 * xp.log(value_at_margin))
        outside = xp.exp(-0.5 * (distance * scale) ** 2)
    elif sigmoid == "quadratic":
        scale = xp.sqrt(1.0 - value_at_margin)
        scaled = distance * scale
        outside = xp.where(xp.abs(scaled) < 1.0, 1.0 - scaled**2, 0.0)
    else:
        raise ValueError(f"unknown sigmoid {sigmoid!r}; use 'gaussian' or 'quadratic'")
    return xp.where(inside, 1.0, outside)
