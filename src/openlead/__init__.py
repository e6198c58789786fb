"""OpenLEAD: the financial methodology of CMS's LEAD ACO model, from an ACO's own claims."""

import ibis

from openlead.errors import InputError, OpenLeadError, ParameterError, RuleError
from openlead.parameters import Parameters, load_parameters

__version__ = "0.1.0"

# ibis merges each Select into the Select below it before writing SQL (``fuse_selects``). Its cost grows with
# the square of a query's depth, and our stages build deep queries: the V28 scorer's 953-node query compiled
# in 0.21-0.27 s fused and 0.11 s unfused, and the alignment + benchmark run on 100k beneficiaries took
# 27.6 s unfused against 28.5-30.4 s fused (ibis compile 3.0-3.2 s against 4.9-5.0 s), with equal results.
# DuckDB and Spark flatten the nested projections themselves. Set for the process: ibis's options are global.
ibis.options.sql.fuse_selects = False

__all__ = [
    "InputError",
    "OpenLeadError",
    "ParameterError",
    "Parameters",
    "RuleError",
    "__version__",
    "load_parameters",
]
