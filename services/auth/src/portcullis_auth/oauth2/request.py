"""The token request, parsed strictly (RFC 6749 §3.2, §4).

The body must be `application/x-www-form-urlencoded` UTF-8 (percent-escapes
too) without NUL characters. A parameter sent twice is `invalid_request`
(§3.1); a parameter sent without a value is treated as omitted (§3.1);
unknown parameters are ignored (§3.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from portcullis_auth.oauth2.errors import InvalidRequestError
from portcullis_auth.oauth2.ports import CallerGone

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
PARAMETER_NAMES = frozenset(
    {
        "grant_type", "scope", "client_id", "client_secret", "username", "password",
        "refresh_token", "code", "redirect_uri", "code_verifier", "device_code", "resource",
        "token", "token_type_hint", "audience",
    }
)  # fmt: skip
"""The parameters of the token, device, revocation and introspection endpoints (RFC 6749,
7009, 7636, 7662, 8628, 8707): the names an error may repeat."""


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What the token endpoint needs from an HTTP request, free of HTTP types."""

    form: Mapping[str, str]
    authorization: str | None = None
    client_ip: str = "unknown"
    caller_gone: CallerGone | None = None
    """Completes once the caller has disconnected: expensive work still waiting for
    its turn (a password check) is dropped then."""

    def get(self, name: str) -> str | None:
        return self.form.get(name)

    def require(self, name: str) -> str:
        value = self.form.get(name)
        if value is None:
            raise InvalidRequestError(f"missing parameter: {name}")
        return value


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        raise InvalidRequestError(f"the request body must be {FORM_CONTENT_TYPE}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("the request body is not UTF-8") from None
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            max_num_fields=64,
            errors="strict",  # a percent-escape that is no UTF-8 is refused, not replaced
        )
    except ValueError:  # UnicodeDecodeError included
        raise InvalidRequestError("the request body is not a valid form") from None
    form: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            # No parameter of ours may hold one (and Postgres stores no text that does).
            raise InvalidRequestError("a parameter holds a NUL character")
        if name in seen:
            # Only a name of the protocol's is echoed: another may be a pasted secret.
            shown = name if name in PARAMETER_NAMES else "a parameter"
            raise InvalidRequestError(f"parameter given more than once: {shown}")
        seen.add(name)
        if value != "":
            form[name] = value
    if not form:
        raise InvalidRequestError("the request body is empty")
    return form
