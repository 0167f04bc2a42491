#!/usr/bin/env python3
"""Other people's clients against a running example server, from its base URL alone.

- openapi-spec-validator: `/openapi.json` is a valid OpenAPI 3.1 document.
- authlib: reads the RFC 8414 metadata at the issuer's well-known URL, checks it with its own
  validators, then logs in, calls the API, refreshes and revokes through the endpoints the
  metadata names.
- PyJWT: `PyJWKClient` on the metadata's `jwks_uri` finds the key of an access token and
  verifies it (issuer, audience, expiry).
- RFC 9728: a refused request names the protected-resource metadata, which names the issuer.

Usage: clients.py <base url> <username> <password>. Needs authlib, requests, pyjwt[crypto]
and openapi-spec-validator (`.ci/run` installs them with pip when missing).
"""

import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from openapi_spec_validator import validate

BASE, USERNAME, PASSWORD = sys.argv[1:4]


def main():
    document = requests.get(f"{BASE}/openapi.json", timeout=30)
    document.raise_for_status()
    validate(document.json())
    assert document.json()["openapi"].startswith("3.1"), document.json()["openapi"]
    print("openapi-spec-validator: /openapi.json is valid OpenAPI", document.json()["openapi"])

    # A client that knows only the API: the refusal leads to the resource metadata, and that
    # to the issuer.
    refused = requests.get(f"{BASE}/items", timeout=30)
    assert refused.status_code == 401, refused.status_code
    challenge = refused.headers["www-authenticate"]
    resource_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
    resource = requests.get(resource_url, timeout=30).json()
    issuer = resource["authorization_servers"][0]

    metadata = AuthorizationServerMetadata(
        requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=30).json()
    )
    # authlib's own checks of each member. response_types_supported is left out: RFC 8414
    # requires the member, and the router sends it empty (it has no authorization endpoint),
    # which authlib's check refuses.
    for name in dir(metadata):
        if name.startswith("validate_") and name != "validate_response_types_supported":
            getattr(metadata, name)()
    assert metadata["issuer"] == issuer
    assert metadata["response_types_supported"] == []
    assert "password" in metadata["grant_types_supported"]

    session = OAuth2Session(token_endpoint_auth_method="none")
    token = session.fetch_token(metadata["token_endpoint"], username=USERNAME, password=PASSWORD,
                                grant_type="password")
    me = session.get(f"{BASE}/users/me", timeout=30)
    assert me.status_code == 200 and me.json()["username"] == USERNAME, me.text
    refreshed = session.refresh_token(metadata["token_endpoint"],
                                      refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]

    # PyJWT finds the signing key through the metadata's jwks_uri.
    keys = jwt.PyJWKClient(metadata["jwks_uri"])
    access = refreshed["access_token"]
    key = keys.get_signing_key_from_jwt(access)
    claims = jwt.decode(access, key.key, algorithms=[jwt.get_unverified_header(access)["alg"]],
                        issuer=issuer, audience="api")
    assert claims["sub"] == me.json()["sub"], claims

    revoked = session.revoke_token(metadata["revocation_endpoint"],
                                   refreshed["refresh_token"], token_type_hint="refresh_token")
    assert revoked.status_code == 200, revoked.text
    again = requests.post(metadata["token_endpoint"], timeout=30, data={
        "grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]})
    assert again.status_code == 400, again.text
    print(f"authlib: metadata at {issuer}; login, /users/me, refresh and revocation through it; "
          f"PyJWT verified a {key.algorithm_name if hasattr(key, 'algorithm_name') else ''} "
          "token with the key found through jwks_uri")


if __name__ == "__main__":
    main()
