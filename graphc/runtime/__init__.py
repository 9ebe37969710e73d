"""Build rendered Cython modules into cached native extensions and import them."""

from graphc.runtime.build import (
    DEFAULT_OPTIONS,
    BuildOptions,
    BuiltModule,
    build_module,
    cache_key,
    default_build_dir,
    load,
    load_module,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "BuildOptions",
    "BuiltModule",
    "build_module",
    "cache_key",
    "default_build_dir",
    "load",
    "load_module",
]
