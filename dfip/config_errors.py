"""One-line messages for bad configuration: the variable, its value and what is allowed.

pydantic's own report spans several lines, names the field (not the environment variable a
user set) and links to its documentation; a CLI user wants `DFIP_X=value: expected ...`.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings

__all__ = ["describe_os_error", "describe_validation_error", "env_prefix"]


#: variables whose value is a secret (a value with `@` may be `user:password@host`: hidden too)
_SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$")


def _settings_classes(base: type[BaseSettings] = BaseSettings) -> list[type[BaseSettings]]:
    found: list[type[BaseSettings]] = []
    for sub in base.__subclasses__():
        found += [sub, *_settings_classes(sub)]
    return found


def env_prefix(model_name: str) -> str | None:
    """The environment prefix of the settings class called `model_name`, if one is loaded."""
    for cls in _settings_classes():
        if cls.__name__ == model_name:
            return str(cls.model_config.get("env_prefix") or "")
    return None


def _one(error: Any, prefix: str | None) -> str:
    field = ".".join(str(p) for p in error.get("loc", ())) or "value"
    name = f"{prefix}{field.upper()}" if prefix is not None else field
    value = error.get("input")
    shown = f"{name}={value}" if isinstance(value, str | int | float) else name
    if _SECRET_NAME.search(name) or (isinstance(value, str) and "@" in value):
        shown = f"{name}=…"  # a secret, or one typed into the wrong variable: never echoed
    ctx = error.get("ctx") or {}
    if error.get("type") == "literal_error" and "expected" in ctx:
        return f"{shown} is not allowed: expected {ctx['expected']}"
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")  # our own validators
    return f"{shown}: {msg}"


def describe_validation_error(exc: ValidationError) -> str:
    """Every problem of `exc` on one line, each naming its environment variable."""
    prefix = env_prefix(exc.title)
    return "; ".join(_one(e, prefix) for e in exc.errors(include_url=False))


def describe_os_error(exc: OSError, env: Mapping[str, str]) -> str:
    """A file problem on one line, naming the setting that points at the file.

    Some callers (ssl's CA loading) raise without the file name; then every DFIP_* variable
    naming a path that cannot be read is the likely culprit."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None and (tls := _tls_file_problem(env)) is not None:
        return tls
    if exc.filename is not None:
        name = os.fspath(exc.filename)
        named = [k for k, v in sorted(env.items()) if k.startswith("DFIP_") and v == name]
        where = f"{named[0]}={name}" if named else str(name)
        return f"{where}: {reason}"
    unreadable = [
        f"{k}={v}"
        for k, v in sorted(env.items())
        if k.startswith("DFIP_")
        and k.endswith(("FILE", "_CAFILE", "_CERTFILE", "_KEYFILE", "_DIR"))
        and v
        and not os.access(v, os.R_OK)
    ]
    if unreadable:
        return f"{', '.join(unreadable)}: {reason}"
    return f"{reason} (a file or folder named by a DFIP_* setting?)"


def _file_problem(path: str) -> str | None:
    if not os.path.exists(path):
        return "No such file or directory"
    if os.path.isdir(path):
        return "is a folder, not a file"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def _tls_file_problem(env: Mapping[str, str]) -> str | None:
    """Which DFIP_KAFKA_SSL_* file is wrong, and how: ssl's errors name neither the file
    nor the setting ("[SSL] PEM lib", "Is a directory")."""
    names = ("DFIP_KAFKA_SSL_CAFILE", "DFIP_KAFKA_SSL_CERTFILE", "DFIP_KAFKA_SSL_KEYFILE")
    files = {name: env[name] for name in names if env.get(name)}
    for name, path in files.items():
        if (problem := _file_problem(path)) is not None:
            return f"{name}={path}: {problem}"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca := files.get("DFIP_KAFKA_SSL_CAFILE"):
        try:
            context.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            return f"DFIP_KAFKA_SSL_CAFILE={ca}: not a PEM CA bundle ({exc.reason or exc})"
    if cert := files.get("DFIP_KAFKA_SSL_CERTFILE"):
        key = files.get("DFIP_KAFKA_SSL_KEYFILE")
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            named = f"DFIP_KAFKA_SSL_CERTFILE={cert}"
            if key:
                named += f", DFIP_KAFKA_SSL_KEYFILE={key}"
            what = "and a matching private key" if key else "with its private key"
            return f"{named}: not a PEM certificate {what} ({exc.reason or exc})"
    return None
