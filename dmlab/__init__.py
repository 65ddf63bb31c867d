"""dmlab: an executable lab for the RESTful OMA DM 2.0 API of an OMA change request."""

from ._version import __version__
from .runtime import Device, Lab, Operator, OperatorError

__all__ = ["Device", "Lab", "Operator", "OperatorError", "__version__"]
