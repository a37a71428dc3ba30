"""Discovery: JWKS (RFC 7517), server metadata (RFC 8414) and the scope list."""

from __future__ import annotations

from litestar import Controller, MediaType, Response, get
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Schema

from portcullis_auth.oauth2.grants.registry import DEFAULT_GRANTS
from portcullis_auth.runtime import AuthRuntime
from portcullis_shared.dependencies import Injected
from portcullis_shared.openapi import OAUTH2_ERROR, answers, error_responses, object_schema

JWK_SET_MEDIA_TYPE = "application/jwk-set+json"
JWK_SET = object_schema(
    {
        "keys": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(
                type=OpenAPIType.OBJECT,
                required=["kty", "kid", "alg", "use"],
                description="A public JWK (RFC 7517 §4).",
            ),
        )
    },
    description="RFC 7517 §5: public keys only.",
)

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


class WellKnownController(Controller):
    @get(
        "/.well-known/jwks.json",
        media_type=JWK_SET_MEDIA_TYPE,
        operation_class=answers(
            {
                "200": OpenAPIResponse(
                    description="The keys tokens are signed with.",
                    content={JWK_SET_MEDIA_TYPE: OpenAPIMediaType(schema=JWK_SET)},
                )
            },
            error_responses(
                OAUTH2_ERROR, 503, s503="No key was loaded yet and the database is unreachable."
            ),
        ),
    )
    async def jwks(self, runtime: Injected[AuthRuntime]) -> Response[bytes]:
        return Response(
            await runtime.keyring.jwks_json(),
            media_type=JWK_SET_MEDIA_TYPE,
            headers={"Cache-Control": f"public, max-age={runtime.settings.tokens.jwks_max_age}"},
        )

    @get("/.well-known/oauth-authorization-server", media_type=MediaType.JSON)
    async def metadata(self, runtime: Injected[AuthRuntime]) -> dict[str, object]:
        settings = runtime.settings
        issuer = settings.tokens.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "device_authorization_endpoint": f"{issuer}/oauth/device/code",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "introspection_endpoint": f"{issuer}/oauth/introspect",
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "scopes_supported": sorted(settings.scopes.names),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": DEFAULT_GRANTS.grant_types,
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        }

    @get("/oauth/scopes", media_type=MediaType.JSON)
    async def scopes(self, runtime: Injected[AuthRuntime]) -> list[dict[str, object]]:
        registry = runtime.settings.scopes
        return [
            {
                "id": name,
                "description": description,
                "privileged": registry.is_privileged(name),
            }
            for name, description in sorted(registry.descriptions.items())
        ]
