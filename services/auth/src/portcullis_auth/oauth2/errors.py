"""One exception class per OAuth 2.0 error code (RFC 6749 §5.2, RFC 8707 §2)."""

from __future__ import annotations

import re
from typing import ClassVar

from portcullis_auth.oauth2.audit import AuditEvent
from portcullis_auth.records import AuthorizationCode, RateLimited, RefreshFamily

_NOT_IN_A_DESCRIPTION = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def _describable(text: str) -> str:
    """RFC 6749 §5.2: an error_description holds only printable ASCII other than `"` and
    `\\`. A description may echo the request (a parameter's name, a grant type), which
    may hold anything: each character outside that set becomes `?`."""
    return _NOT_IN_A_DESCRIPTION.sub("?", text)


class OAuth2Error(Exception):
    """An error answered as `{"error", "error_description"}` JSON (RFC 6749 §5.2)."""

    error: ClassVar[str] = "invalid_request"
    status_code: ClassVar[int] = 400

    def __init__(
        self,
        description: str,
        *,
        headers: dict[str, str] | None = None,
        keep_changes: bool = False,
        audit: AuditEvent | None = None,
    ) -> None:
        super().__init__(description)
        self.description = _describable(description)
        self.headers = headers or {}
        self.keep_changes = keep_changes
        """Commit the request's writes despite the error (a detected reuse revokes a family)."""
        self.audit = audit
        """What to report of this refusal, if anything."""

    def to_dict(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidRequestError(OAuth2Error):
    error = "invalid_request"


class InvalidClientError(OAuth2Error):
    """§5.2: 401, with `WWW-Authenticate: Basic` when the client used Basic."""

    error = "invalid_client"
    status_code = 401

    def __init__(self, description: str, *, used_basic: bool = False) -> None:
        headers = {"WWW-Authenticate": 'Basic realm="portcullis"'} if used_basic else None
        super().__init__(description, headers=headers)


class InvalidGrantError(OAuth2Error):
    error = "invalid_grant"


class ReusedRefreshTokenError(InvalidGrantError):
    """A used refresh token presented again outside the grace window (RFC 9700 §4.14.2):
    its whole family is revoked, and that revocation stands although the request fails."""

    def __init__(self, family: RefreshFamily) -> None:
        super().__init__(
            "the refresh token is invalid, expired or revoked",
            keep_changes=True,
            audit=AuditEvent(
                "refresh_token_reused", {"sid": family.id, "client": family.client_id}
            ),
        )
        self.family = family


class ReusedAuthorizationCodeError(InvalidGrantError):
    """An authorization code presented a second time (RFC 6749 §4.1.2): whatever its first
    use issued is revoked, and that revocation stands although the request fails."""

    def __init__(self, code: AuthorizationCode) -> None:
        super().__init__("the authorization code is invalid, expired or used", keep_changes=True)
        self.code = code


class UnauthorizedClientError(OAuth2Error):
    error = "unauthorized_client"


class AccessDeniedError(OAuth2Error):
    """The user said no (RFC 6749 §4.1.2.1, RFC 8628 §3.5)."""

    error = "access_denied"


class UnsupportedResponseTypeError(OAuth2Error):
    error = "unsupported_response_type"


class AuthorizationPendingError(OAuth2Error):
    """RFC 8628 §3.5: the user has not answered yet; poll again after the interval."""

    error = "authorization_pending"


class SlowDownError(OAuth2Error):
    """RFC 8628 §3.5: polling too fast; the interval grows by 5 seconds."""

    error = "slow_down"


class ExpiredTokenError(OAuth2Error):
    """RFC 8628 §3.5: the device code expired; start over."""

    error = "expired_token"


class UnsupportedGrantTypeError(OAuth2Error):
    error = "unsupported_grant_type"


class InvalidScopeError(OAuth2Error):
    error = "invalid_scope"


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is not one the client may name."""

    error = "invalid_target"


class TooManyAttemptsError(OAuth2Error):
    """Repeated password failures: back off (429 with Retry-After)."""

    error = "temporarily_unavailable"
    status_code = 429

    def __init__(self, retry_after: int, *, audit: AuditEvent | None = None) -> None:
        super().__init__(
            "too many failed attempts; try again later",
            headers={"Retry-After": str(max(1, retry_after))},
            audit=audit,
        )


class RateLimitedError(OAuth2Error):
    """Past a request budget: 429 (RFC 6585 §4) with when to come back."""

    error = "temporarily_unavailable"
    status_code = 429

    def __init__(self, refusal: RateLimited) -> None:
        super().__init__(
            f"too many requests; try again in {refusal.retry_after} seconds",
            headers=rate_limit_headers(refusal),
        )


def rate_limit_headers(refusal: RateLimited) -> dict[str, str]:
    """`Retry-After`, and the budget in the `RateLimit-*` fields that
    draft-ietf-httpapi-ratelimit-headers names (limit, remaining, seconds to reset)."""
    wait = str(refusal.retry_after)
    return {
        "Retry-After": wait,
        "RateLimit-Limit": str(refusal.limit),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": wait,
        "RateLimit-Policy": f"{refusal.limit};w={refusal.window}",
    }


class TemporarilyUnavailableError(OAuth2Error):
    """A backend (database, Redis) cannot be reached: 503, nothing issued."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str = "the service is temporarily unavailable") -> None:
        super().__init__(description, headers={"Retry-After": "1"})
