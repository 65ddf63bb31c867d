"""dmlab: an executable lab for the RESTful OMA DM 2.0 API of an OMA change request."""

__version__ = "0.1.0"
