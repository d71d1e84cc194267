"""The platform's version: one source for the package metadata, `dfip --version`, the
`dfip_build_info` metric and the query API's OpenAPI document."""

__all__ = ["__version__"]

__version__ = "0.1.0"
