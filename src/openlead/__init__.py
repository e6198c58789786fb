"""OpenLEAD: the financial methodology of CMS's LEAD ACO model, from an ACO's own claims."""

from openlead.errors import InputError, OpenLeadError, ParameterError, RuleError
from openlead.parameters import Parameters, load_parameters

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "OpenLeadError",
    "ParameterError",
    "Parameters",
    "RuleError",
    "__version__",
    "load_parameters",
]
