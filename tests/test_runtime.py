"""Process-wide JAX settings."""

from jaxrl import runtime


def test_xla_flags_are_added_where_the_caller_has_not_set_them():
    flags = {"xla_backend_optimization_level": "1", "xla_cpu_use_fusion_emitters": "false"}
    assert runtime.with_xla_flags("", flags) == (
        "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false")
    mine = "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=3"
    assert runtime.with_xla_flags(mine, flags) == f"{mine} --xla_cpu_use_fusion_emitters=false"
