"""featurekit: point-in-time training sets and skew-free online serving from dbt feature views."""

__version__ = "0.1.0"

from .errors import CheckFailed, FeaturekitError  # noqa: E402
from .online import OnlineStore  # noqa: E402
from .training import training_set  # noqa: E402

__all__ = ["CheckFailed", "FeaturekitError", "OnlineStore", "training_set", "__version__"]
