"""RIB: micro-behavior session recommendation (Zhou et al., WSDM 2018) as a library.

The library knows nothing about Dagster; `pipeline/` wires these functions into assets.
"""

__version__ = "0.1.0"
