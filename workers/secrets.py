"""Reads an upstream API key from SSM Parameter Store or Secrets Manager, once per container.
The key is never logged; failures name the parameter, not its value."""

from __future__ import annotations

import threading
from typing import Any

from workers.upstream import BadCredentials


class ApiKey:
    """Callable returning the key; read lazily on first use, cached for the container's life."""

    def __init__(self, ssm: Any, secrets: Any, parameter: str | None, secret_id: str | None) -> None:
        self._ssm = ssm
        self._secrets = secrets
        self._parameter = parameter
        self._secret_id = secret_id
        self._value: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key, even in a traceback's locals
        return f"ApiKey(parameter={self._parameter!r}, secret={self._secret_id!r})"

    def __call__(self) -> str:
        with self._lock:
            if self._value is None:
                self._value = self._read()
            return self._value

    def _read(self) -> str:
        try:
            if self._parameter:
                response = self._ssm.get_parameter(Name=self._parameter, WithDecryption=True)
                value = str(response["Parameter"]["Value"])
            elif self._secret_id:
                value = str(self._secrets.get_secret_value(SecretId=self._secret_id)["SecretString"])
            else:
                raise BadCredentials("no API key source configured (set a *_KEY_PARAMETER or *_KEY_SECRET)")
        except BadCredentials:
            raise
        except Exception as exc:
            where = self._parameter or self._secret_id
            raise BadCredentials(f"could not read API key from {where}: {type(exc).__name__}") from None
        if not value.strip():
            raise BadCredentials(f"API key in {self._parameter or self._secret_id} is empty")
        return value.strip()
