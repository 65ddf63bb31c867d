"""dmlab: an executable lab for the RESTful OMA DM 2.0 API of an OMA change request."""

from .runtime import Device, Lab, Operator, OperatorError

__version__ = "0.1.0"

__all__ = ["Device", "Lab", "Operator", "OperatorError", "__version__"]
