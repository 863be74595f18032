"""featurekit: point-in-time training sets and skew-free online serving from dbt feature views."""

__version__ = "0.1.0"

from .errors import CheckFailed, FeaturekitError  # noqa: E402
from .labels import LabelTable  # noqa: E402
from .training import training_set  # noqa: E402


def __getattr__(name):
    # OnlineStore loads on first use: it needs pyarrow (~0.3 s), which `train-set` never does.
    if name == "OnlineStore":
        from .online.store import OnlineStore

        return OnlineStore
    raise AttributeError(f"module 'featurekit' has no attribute {name!r}")

__all__ = ["CheckFailed", "FeaturekitError", "LabelTable", "OnlineStore", "training_set", "__version__"]
