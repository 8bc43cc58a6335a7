"""lp-harness: load and soak testing for LivePerson consumer messaging, on Locust."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lp-harness")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+checkout"
