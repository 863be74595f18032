"""The featurekit command line: click commands only, each a thin layer over one library call."""

from .main import main

__all__ = ["main"]
