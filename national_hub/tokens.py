"""Client credentials and access tokens (OAuth2 client credentials, RFC 6749 §4.4).

Node secrets the hub generates are 256-bit random strings, so a single SHA-256 is a sound
way to store them: a slow password hash protects guessable passwords, which these are
not, and would cap ``/token`` at a few hundred logins a second. A secret an operator
chooses may be guessable, so it is stored with scrypt, salted.

Access tokens are HS256 JWTs signed with the hub's key. Verifying one costs tens of
microseconds; a consumer presents the same token thousands of times, so verified tokens
are cached until they expire (the node and credential behind them are still checked on
every request, so disabling a node or revoking a credential takes effect at once).

A token names its credential's generation (``gen``): a random value the credential takes
when it is created, rotated or disabled. A token of an earlier generation is refused, so
rotating, deleting (and re-creating with the same client id) or disabling a credential
ends its outstanding tokens at once on the replica that made the change, and within one
registry refresh on the others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import jwt

from common.contract import TOKEN_AUDIENCE, TOKEN_ISSUER, TOKEN_SCOPE
from common.errors import TokenInvalid

__all__ = [
    "Claims",
    "TokenService",
    "hash_secret",
    "new_client_id",
    "new_generation",
    "new_secret",
    "parse_basic_auth",
    "verify_secret",
]

_ALGORITHM = "HS256"
_CACHE_LIMIT = 100_000
_LEEWAY_SECONDS = 5


def new_secret() -> str:
    """A fresh client secret."""
    return secrets.token_urlsafe(32)


def new_generation() -> str:
    """A credential's generation: random, so no two (even of one client id) are equal."""
    return secrets.token_hex(8)


def new_client_id(node: str) -> str:
    """A client id that names its node, for readable logs."""
    return f"{node.lower()}-{secrets.token_hex(6)}"


#: scrypt's cost for secrets an operator chose (RFC 7914; about 50 ms and 16 MiB each).
_SCRYPT = {"n": 1 << 14, "r": 8, "p": 1, "dklen": 32}


def hash_secret(secret: str, *, chosen: bool = False) -> str:
    """The stored form of a client secret: SHA-256 for the hub's random 256-bit secrets,
    a slow, salted scrypt for a secret an operator chose (it may be guessable)."""
    if not chosen:
        return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time comparison of a presented secret with its stored hash."""
    scheme, _, rest = stored.partition("$")
    if scheme == "scrypt":
        salt, _, digest = rest.partition("$")
        try:
            presented = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
        except ValueError:
            return False
        return hmac.compare_digest(presented.hex(), digest)
    return hmac.compare_digest(hash_secret(secret), stored)


def parse_basic_auth(header: str) -> tuple[str, str] | None:
    """Split an HTTP Basic ``Authorization`` value into client id and secret."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified access token says about its bearer."""

    node: str
    client_id: str
    expires_at: float
    issued_at: float
    #: The generation of the credential the token was issued for.
    generation: str


class TokenService:
    """Issues and verifies the hub's access tokens."""

    def __init__(self, key: str, ttl_seconds: int) -> None:
        self._key = key
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, Claims] = {}

    def issue(self, *, node: str, client_id: str, generation: str) -> str:
        """Sign a token for a node authenticated with ``client_id`` of ``generation``."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": TOKEN_ISSUER,
            "aud": TOKEN_AUDIENCE,
            "sub": node,
            "client_id": client_id,
            "gen": generation,
            "scope": TOKEN_SCOPE,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(payload, self._key, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Claims:
        """Return the claims of a valid token, or raise ``TokenInvalid``."""
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + _LEEWAY_SECONDS > now:
                return cached
            del self._cache[token]
            raise TokenInvalid("token expired")
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=TOKEN_AUDIENCE,
                issuer=TOKEN_ISSUER,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "nbf", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenInvalid("token not yet valid") from None
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from None
        sub = payload.get("sub")
        client_id = payload.get("client_id")
        generation = payload.get("gen")
        if not (
            isinstance(sub, str) and isinstance(client_id, str) and isinstance(generation, str)
        ):
            raise TokenInvalid("token lacks subject, client id or credential generation")
        claims = Claims(
            node=sub,
            client_id=client_id,
            expires_at=float(payload["exp"]),
            issued_at=float(payload["iat"]),
            generation=generation,
        )
        if len(self._cache) >= _CACHE_LIMIT:
            # Dropping everything is cheap and bounded; the next hits re-verify.
            self._cache.clear()
        self._cache[token] = claims
        return claims
