"""The NexusRAG Python SDK: standard library only, generated from the gateway's OpenAPI document.

    from nexusrag import create_client
    api = create_client(api_key="nrg_...", base_url="http://localhost:8000")
    print(api.who_am_i()["data"]["tenant_id"])
"""

from ._generated import API_VERSION, Client
from ._runtime import ApiError, Envelope, Event, RetryPolicy, is_resumable_id, parse_sse, server_delay

__version__ = API_VERSION
__all__ = ["API_VERSION", "ApiError", "Client", "Envelope", "Event", "RetryPolicy", "create_client", "is_resumable_id", "parse_sse", "server_delay"]


def create_client(api_key: str | None = None, base_url: str = "http://localhost:8000", *, retry: RetryPolicy | None = None,
                  timeout: float = 30.0, headers: dict[str, str] | None = None) -> Client:
    """A client of the gateway at base_url that sends api_key as Authorization: Bearer <key>."""
    return Client(api_key, base_url, retry=retry, timeout=timeout, headers=headers)
