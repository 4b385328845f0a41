"""Who is asking: bearer API keys mapped to tenants, thread ids namespaced by tenant.

Keys come from `settings.server.api_keys` (each `{key, tenant}`). A request carries
`Authorization: Bearer <key>`; the key names the tenant whose documents it searches and whose
threads it reads. Thread ids clients see are plain (`t1`); the checkpointer stores them as
`<tenant>:<id>`, so one tenant can never name another's thread (nor a CLI thread).

With no keys configured the server is open, for one user on this machine: `check_bind` refuses
any address but loopback.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from dataclasses import dataclass

from ragloom.core.errors import ConfigError
from ragloom.core.logging import register_secret
from ragloom.core.settings import ServerSettings
from ragloom.server_errors import InvalidRequestError, UnauthorizedError

OPEN_NAMESPACE = "local"  # the namespace of threads on a server without keys
_THREAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")


@dataclass(frozen=True)
class Principal:
    """The caller: the store tenant it searches (None: the default) and its thread namespace."""

    tenant: str | None
    namespace: str

    def thread_key(self, thread_id: str) -> str:
        """The checkpointer's id of this caller's thread `thread_id`."""
        return f"{self.namespace}:{thread_id}"


class KeyRing:
    """Checks bearer keys in constant time and maps them to principals."""

    def __init__(self, settings: ServerSettings, default_tenant: str | None = None) -> None:
        self._keys = [(k.key.get_secret_value().encode(), k.tenant) for k in settings.api_keys]
        self._open = Principal(default_tenant, default_tenant or OPEN_NAMESPACE)
        for key, _ in self._keys:
            register_secret(key.decode())  # never printed by any log line

    @property
    def enabled(self) -> bool:
        """True when requests must carry a key."""
        return bool(self._keys)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an `Authorization` header; raises UnauthorizedError."""
        if not self._keys:
            return self._open
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("missing bearer API key (Authorization: Bearer <key>)")
        given = token.strip().encode()
        tenant = None
        for key, owner in self._keys:  # compare with every key: no early exit to time
            if hmac.compare_digest(given, key):
                tenant = owner
        if tenant is None:
            raise UnauthorizedError("invalid API key")
        return Principal(tenant, tenant)


def check_thread_id(thread_id: str, max_chars: int) -> str:
    """`thread_id` if it is a short id of letters, digits and `._~-`; else InvalidRequestError."""
    if len(thread_id) > max_chars:
        raise InvalidRequestError(f"thread id longer than {max_chars} characters")
    if not _THREAD_ID.match(thread_id):
        raise InvalidRequestError("thread id must be letters, digits and . _ ~ - only")
    return thread_id


def is_loopback(host: str) -> bool:
    """True for loopback addresses and `localhost`."""
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: ServerSettings) -> None:
    """Refuse to listen beyond loopback without API keys (ConfigError)."""
    if settings.api_keys or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to listen on {host} without API keys: anyone who can reach it could read "
        "every document and thread",
        setting="server.api_keys",
        fix='set RAGLOOM_SERVER__API_KEYS=\'[{"key": "<32+ random chars>", "tenant": "main"}]\' '
        "or listen on 127.0.0.1",
    )
