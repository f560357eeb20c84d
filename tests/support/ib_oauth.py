"""IB's side of the Web API's OAuth 1.0a handshake, for a stand-in server on 127.0.0.1.

Written from IB's OAuth 1.0a documentation: the consumer signs the live-session-token request
with RSA-SHA256 (the base string prefixed by the hex of the decrypted access-token secret) and
sends a Diffie-Hellman challenge; IB answers with its DH response and an HMAC-SHA1 signature of
the consumer key under the live session token (LST); every later request is signed with
HMAC-SHA256 under the LST. This side holds what IB holds: the consumer's public keys and the
plaintext access-token secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote_plus, unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# RFC 3526 group 14 (2048-bit MODP), generator 2.
DH_PRIME = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404"
    "DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406"
    "B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD"
    "24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E46"
    "2E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D226"
    "1898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF"
)
_PAIR = re.compile(r'(\w+)="([^"]*)"')


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _java_bytes(value: int) -> bytes:
    """Big-endian two's-complement bytes, as Java's BigInteger.toByteArray (IB's reference)."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


@dataclass
class OAuthParty:
    """The credentials IB issues to a consumer, and IB's verification of its requests."""

    consumer_key: str = "TESTCONS"
    access_token: str = "access-token-1"
    encryption: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    signature: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    token_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    live_session_token: bytes | None = None

    # ---- what the consumer configures -------------------------------------------------------
    @property
    def encrypted_token_secret(self) -> str:
        cipher = self.encryption.public_key().encrypt(self.token_secret, padding.PKCS1v15())
        return base64.b64encode(cipher).decode()

    @property
    def encryption_pem(self) -> str:
        return _pem(self.encryption)

    @property
    def signature_pem(self) -> str:
        return _pem(self.signature)

    # ---- IB's side --------------------------------------------------------------------------
    @staticmethod
    def parse(authorization: str) -> dict[str, str]:
        if not authorization.startswith("OAuth "):
            raise PermissionError("no OAuth authorization header")
        return dict(_PAIR.findall(authorization))

    @staticmethod
    def base_string(method: str, url: str, params: dict[str, str], prepend: str = "") -> str:
        signed = {k: v for k, v in params.items() if k not in ("realm", "oauth_signature")}
        pairs = "&".join(f"{k}={v}" for k, v in sorted(signed.items()))
        return f"{prepend}{method}&{quote_plus(url)}&{quote_plus(pairs)}"

    def issue_live_session_token(self, url: str, authorization: str) -> dict[str, object]:
        params = self.parse(authorization)
        if params.get("oauth_consumer_key") != self.consumer_key:
            raise PermissionError("unknown consumer key")
        if params.get("oauth_token") != self.access_token:
            raise PermissionError("unknown access token")
        if params.get("oauth_signature_method") != "RSA-SHA256":
            raise PermissionError("the live session token request must be signed with RSA-SHA256")
        base = self.base_string("POST", url, params, prepend=self.token_secret.hex())
        signature = base64.b64decode(unquote_plus(params["oauth_signature"]))
        try:
            self.signature.public_key().verify(
                signature, base.encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature as exc:
            raise PermissionError("bad RSA-SHA256 signature") from exc
        prime = int(DH_PRIME, 16)
        b = secrets.randbits(256)
        challenge = int(params["diffie_hellman_challenge"], 16)
        shared = pow(challenge, b, prime)
        lst = hmac.new(_java_bytes(shared), self.token_secret, hashlib.sha1).digest()
        self.live_session_token = lst
        return {
            "diffie_hellman_response": format(pow(2, b, prime), "x"),
            "live_session_token_signature": hmac.new(
                lst, self.consumer_key.encode(), hashlib.sha1
            ).hexdigest(),
            "live_session_token_expiration": 4_102_444_800_000,
        }

    def check_request(self, method: str, url: str, authorization: str) -> None:
        """Refuse a request not signed with HMAC-SHA256 under the live session token."""
        if self.live_session_token is None:
            raise PermissionError("no live session token issued yet")
        params = self.parse(authorization)
        if params.get("oauth_signature_method") != "HMAC-SHA256":
            raise PermissionError("requests must be signed with HMAC-SHA256")
        base = self.base_string(method, url, params)
        expected = hmac.new(self.live_session_token, base.encode(), hashlib.sha256).digest()
        given = base64.b64decode(unquote_plus(params.get("oauth_signature", "")))
        if not hmac.compare_digest(expected, given):
            raise PermissionError("bad HMAC-SHA256 signature")
