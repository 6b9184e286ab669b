"""civicsoc: security monitoring for public-sector agencies.

This package holds what the collectors, the detection engine and the API share: configuration,
the ECS event model, the domain records and the store.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("civicsoc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
