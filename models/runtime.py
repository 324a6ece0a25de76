"""How a handler builds its AWS clients from a function environment (os.environ on Lambda;
the function's configured environment in the local runtime), so both read the same inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def client_factory(env: Mapping[str, str]) -> Callable[[str], Any]:
    """client(service) for the credentials, region and endpoint in `env`."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
    )

    def client(service: str) -> Any:
        # As boto3 reads them: a service's own AWS_ENDPOINT_URL_<SERVICE> wins over the global one.
        own = env.get("AWS_ENDPOINT_URL_" + service.upper().replace("-", "_"))
        endpoint = own or env.get("AWS_ENDPOINT_URL") or None
        return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]

    return client
