//! The router's routes as an OpenAPI 3.1 document: what [`AuthRouter::openapi`] and
//! [`AuthRouter::admin_openapi`] return.

use http::Method;
use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;

use super::{AuthRouter, State};
use crate::error::ConfigError;
use crate::openapi::{ERROR_SCHEMA, Guard, OAUTH2_SCHEME, error_schema, from_json, secure_with};

impl AuthRouter {
    /// The OpenAPI 3.1 document of [`router`](Self::router) mounted at `mount` (`"/auth"`, or
    /// `""` at the root): every route this configuration serves (registration, mail and
    /// verification routes only when enabled), its request and response bodies and each error
    /// answer, with `Cache-Control` and `Retry-After` where they are sent. It defines the
    /// security schemes [`OAUTH2_SCHEME`] (the password flow, `tokenUrl` and `refreshUrl` both
    /// `{mount}/token`, the [supported scopes](super::AuthRouterBuilder::scopes_supported)) and
    /// [`BEARER_SCHEME`](crate::openapi::BEARER_SCHEME); the signed-in routes' security comes
    /// from the router's own bearer and administrator layers. Merge it into the application's
    /// document with `OpenApi::merge`, then [`secure`](crate::openapi::secure) the application's routes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `mount` is empty or a path starting with `/`
    /// without a trailing `/`, query or fragment.
    pub fn openapi(&self, mount: &str) -> Result<OpenApi, ConfigError> {
        document(&self.state, mount, Part::Router)
    }

    /// The OpenAPI 3.1 document of [`admin_router`](Self::admin_router) at `mount` (see
    /// [`openapi`](Self::openapi), which includes these routes under its own mount). Its
    /// security requirements name the [`OAUTH2_SCHEME`] that [`openapi`](Self::openapi)
    /// defines: merge both into the application's document.
    ///
    /// # Errors
    ///
    /// As [`openapi`](Self::openapi).
    pub fn admin_openapi(&self, mount: &str) -> Result<OpenApi, ConfigError> {
        document(&self.state, mount, Part::Admin)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Router,
    Admin,
}

/// The JSON of a response with the error body.
fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref(ERROR_SCHEMA)}},
    })
}

/// [`error`] with `Retry-After`.
fn retry_later(description: &str) -> Value {
    let mut response = error(description);
    response["headers"] = json!({
        "Retry-After": {
            "description": "Whole seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
        },
    });
    response
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A JSON request body of schema `name`.
fn json_body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema_ref(name)}}})
}

/// A JSON response of schema `name`, which no cache may keep.
fn ok(description: &str, name: &str) -> Value {
    json!({
        "description": description,
        "headers": {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}},
        "content": {"application/json": {"schema": schema_ref(name)}},
    })
}

fn no_content(description: &str) -> Value {
    json!({"description": description})
}

/// An operation: `summary`, `responses` (status → response), and more members in `extra`.
fn operation(summary: &str, tag: &str, responses: &[(&str, Value)], extra: Value) -> Value {
    let mut operation = json!({"summary": summary, "tags": [tag]});
    let answers: Map<String, Value> = responses
        .iter()
        .map(|(status, response)| ((*status).to_owned(), response.clone()))
        .collect();
    operation["responses"] = Value::Object(answers);
    if let Value::Object(extra) = extra {
        for (key, value) in extra {
            operation[key] = value;
        }
    }
    operation
}

fn document(state: &State, mount: &str, part: Part) -> Result<OpenApi, ConfigError> {
    let mut document: OpenApi = from_json(json_document(state, mount, part)?)?;
    if let Some(components) = &mut document.components {
        components
            .schemas
            .insert(ERROR_SCHEMA.to_owned(), error_schema()?);
    }

    let bearer = Guard::from(&state.bearer);
    let signed_in = [
        (Method::POST, "/logout"),
        (Method::POST, "/logout/all"),
        (Method::GET, "/me"),
        (Method::DELETE, "/me"),
        (Method::POST, "/password"),
    ];
    if part == Part::Router {
        let linking = [
            (Method::POST, "/external/{provider}/link"),
            (Method::PUT, "/external/{provider}/link"),
            (Method::DELETE, "/external/{provider}/link"),
        ];
        let linking = linking.iter().filter(|_| state.has_external_sign_in());
        for (method, path) in signed_in.iter().chain(linking) {
            secure_with(
                &mut document,
                method,
                &format!("{mount}{path}"),
                std::slice::from_ref(&bearer),
                true,
            )?;
        }
    }
    let administrator = [bearer, Guard::from(&state.require_admin)];
    for (method, path) in [
        (Method::GET, "/admin/users"),
        (Method::GET, "/admin/users/{id}"),
        (Method::PATCH, "/admin/users/{id}"),
        (Method::DELETE, "/admin/users/{id}"),
    ] {
        secure_with(
            &mut document,
            &method,
            &format!("{mount}{path}"),
            &administrator,
            true,
        )?;
    }
    Ok(document)
}

/// The document as JSON, before the security of its signed-in routes.
fn json_document(state: &State, mount: &str, part: Part) -> Result<Value, ConfigError> {
    let bad = |c: char| matches!(c, '?' | '#' | '{' | '}') || c.is_whitespace() || c.is_control();
    if !(mount.is_empty() || mount.starts_with('/') && !mount.ends_with('/')) || mount.contains(bad)
    {
        return Err(ConfigError::InvalidSetting(
            "the mount is empty or a path like /auth, without a trailing /",
        ));
    }
    let limited = state.config.rate_limit.is_some();
    let too_many =
        retry_later("Too many attempts from this client or at this account: `rate_limited`.");
    let busy = retry_later(
        "Password hashing is at capacity or a store did not answer: \
         `temporarily_unavailable`.",
    );
    let too_large = error("The body is larger than the router reads (8 KiB): `invalid_request`.");
    let malformed = error(
        "A malformed request (`invalid_request`), or a password or token that is wrong \
         (`invalid_grant`).",
    );
    // The answers of every route whose body may be checked against a password or token.
    let guarded = |mut answers: Vec<(&'static str, Value)>| {
        answers.push(("413", too_large.clone()));
        if limited {
            answers.push(("429", too_many.clone()));
        }
        answers.push(("503", busy.clone()));
        answers
    };
    let account = "account";
    let mut paths = Map::new();
    let mut add = |path: &str, method: &str, operation: Value| {
        let item = paths
            .entry(format!("{mount}{path}"))
            .or_insert_with(|| json!({}));
        item[method] = operation;
    };

    if part == Part::Router {
        let form_or_json = |name: &str| {
            json!({
                "required": true,
                "content": {
                    "application/x-www-form-urlencoded": {"schema": schema_ref(name)},
                    "application/json": {"schema": schema_ref(name)},
                },
            })
        };
        add(
            "/token",
            "post",
            operation(
                "Log in (password grant) or refresh a session (refresh-token grant)",
                "oauth2",
                &guarded(vec![
                    ("200", {
                        let mut answer =
                            ok("The token pair (RFC 6749 section 5.1).", "TokenResponse");
                        answer["headers"]["Pragma"] =
                            json!({"schema": {"type": "string", "enum": ["no-cache"]}});
                        answer
                    }),
                    (
                        "400",
                        error(
                            "RFC 6749 section 5.2: `invalid_request`, `invalid_grant` (wrong \
                             username or password, unusable refresh token), `invalid_scope`, \
                             `unsupported_grant_type` or `unauthorized_client`.",
                        ),
                    ),
                    ("401", {
                        let mut answer = error(
                            "`invalid_client`: client authentication failed. Over HTTP Basic \
                             the answer carries a `Basic` challenge; empty Basic credentials \
                             (`Basic Og==`) are a public client, not a failure.",
                        );
                        answer["headers"] =
                            json!({"WWW-Authenticate": {"schema": {"type": "string"}}});
                        answer
                    }),
                ]),
                json!({"requestBody": form_or_json("TokenRequest")}),
            ),
        );
        add(
            "/revoke",
            "post",
            operation(
                "Revoke a refresh or access token (RFC 7009)",
                "oauth2",
                &guarded(vec![
                    (
                        "200",
                        ok(
                            "Revoked, or unknown or expired: the same answer (RFC 7009 \
                             section 2.2).",
                            "Empty",
                        ),
                    ),
                    (
                        "400",
                        error(
                            "`invalid_request`, or `unauthorized_client`: the token was \
                             issued to another client.",
                        ),
                    ),
                    (
                        "401",
                        error("`invalid_client`: client authentication failed."),
                    ),
                ]),
                json!({"requestBody": form_or_json("RevocationRequest")}),
            ),
        );
        add(
            "/jwks.json",
            "get",
            operation(
                "The issuer's public keys",
                "oauth2",
                &[(
                    "200",
                    json!({
                        "description": "A JWK Set (RFC 7517); empty for HMAC. Cacheable for five minutes.",
                        "headers": {"Cache-Control": {"schema": {"type": "string", "enum": ["public, max-age=300"]}}},
                        "content": {"application/jwk-set+json": {"schema": schema_ref("Jwks")}},
                    }),
                )],
                json!({}),
            ),
        );
        let ended =
            no_content("The session is over: its refresh token and access tokens stop working.");
        add(
            "/logout",
            "post",
            operation(
                "End this session",
                account,
                &[("204", ended.clone()), ("503", busy.clone())],
                json!({}),
            ),
        );
        add(
            "/logout/all",
            "post",
            operation(
                "End every session of the user",
                account,
                &[("204", ended), ("503", busy.clone())],
                json!({}),
            ),
        );
        add(
            "/me",
            "get",
            operation(
                "The signed-in account",
                account,
                &[
                    ("200", ok("The account (never a password hash).", "User")),
                    ("404", error("The account no longer exists: `not_found`.")),
                    ("503", busy.clone()),
                ],
                json!({}),
            ),
        );
        add(
            "/me",
            "delete",
            operation(
                "Delete the signed-in account, ending every session of it",
                account,
                &guarded(vec![
                    ("204", no_content("Deleted.")),
                    ("400", malformed.clone()),
                    (
                        "409",
                        error("The last administrator cannot be deleted: `last_admin`."),
                    ),
                ]),
                json!({"requestBody": json_body("AccountDeletion")}),
            ),
        );
        add(
            "/password",
            "post",
            operation(
                "Change the password; every other session of the user ends",
                account,
                &guarded(vec![
                    ("204", no_content("Changed.")),
                    ("400", malformed.clone()),
                ]),
                json!({"requestBody": json_body("PasswordChange")}),
            ),
        );
        if state.config.registration.is_some() {
            add(
                "/register",
                "post",
                operation(
                    "Create an account",
                    account,
                    &guarded(vec![
                        ("201", ok("The new account.", "User")),
                        (
                            "400",
                            error(
                                "`invalid_request`: a username, password or address the \
                                 policy refuses.",
                            ),
                        ),
                        ("409", error("`username_taken` or `email_taken`.")),
                    ]),
                    json!({"requestBody": json_body("Registration")}),
                ),
            );
        }
        let accepted = ok(
            "Always the same answer, whether or not an account matches.",
            "Accepted",
        );
        if state.config.mail.is_some() {
            add(
                "/password/forgot",
                "post",
                operation(
                    "Mail a password-reset link",
                    account,
                    &guarded(vec![("202", accepted.clone()), ("400", malformed.clone())]),
                    json!({"requestBody": json_body("MailRequest")}),
                ),
            );
            add(
                "/password/reset",
                "post",
                operation(
                    "Set a new password with a mailed token; every session of the user ends",
                    account,
                    &guarded(vec![
                        ("204", no_content("Set.")),
                        ("400", malformed.clone()),
                    ]),
                    json!({"requestBody": json_body("PasswordReset")}),
                ),
            );
        }
        if state.has_external_sign_in() {
            external(&mut add, &busy, limited.then_some(&too_many));
        }
        if state.config.email_verification {
            add(
                "/email/verify",
                "post",
                operation(
                    "Verify the address with a mailed token",
                    account,
                    &guarded(vec![
                        ("204", no_content("Verified.")),
                        ("400", malformed.clone()),
                    ]),
                    json!({"requestBody": json_body("EmailVerification")}),
                ),
            );
            add(
                "/email/verify/resend",
                "post",
                operation(
                    "Mail a new verification link",
                    account,
                    &guarded(vec![("202", accepted), ("400", malformed.clone())]),
                    json!({"requestBody": json_body("MailRequest")}),
                ),
            );
        }
    }

    let admin = "administration";
    let user_id = json!([{
        "name": "id", "in": "path", "required": true,
        "description": "The user's id (the `sub` of their tokens).",
        "schema": {"type": "string"},
    }]);
    let not_found = error("No such user: `not_found`.");
    let last_admin = error(
        "The last enabled administrator cannot be disabled, demoted or deleted: `last_admin`.",
    );
    add(
        "/admin/users",
        "get",
        operation(
            "List users by username",
            admin,
            &[
                ("200", {
                    let mut answer = ok("A page of users.", "UserList");
                    answer["headers"]["Link"] = json!({
                        "description": "`<?limit=…&cursor=…>; rel=\"next\"` when more follow.",
                        "schema": {"type": "string"},
                    });
                    answer
                }),
                (
                    "400",
                    error("A malformed `limit` or `cursor`: `invalid_request`."),
                ),
                ("503", busy.clone()),
            ],
            json!({"parameters": [
                {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": super::MAX_PAGE_SIZE, "default": super::DEFAULT_PAGE_SIZE}},
                {"name": "cursor", "in": "query", "required": false, "schema": {"type": "string"}},
            ]}),
        ),
    );
    add(
        "/admin/users/{id}",
        "get",
        operation(
            "One user",
            admin,
            &[
                ("200", ok("The user.", "User")),
                ("404", not_found.clone()),
                ("503", busy.clone()),
            ],
            json!({"parameters": user_id}),
        ),
    );
    add(
        "/admin/users/{id}",
        "patch",
        operation(
            "Change a user; taking a grant away or disabling ends their sessions",
            admin,
            &[
                ("200", ok("The user as changed.", "User")),
                ("400", error("A malformed change: `invalid_request`.")),
                ("404", not_found.clone()),
                ("409", last_admin.clone()),
                ("413", too_large.clone()),
                ("503", busy.clone()),
            ],
            json!({"parameters": user_id, "requestBody": json_body("UserChange")}),
        ),
    );
    add(
        "/admin/users/{id}",
        "delete",
        operation(
            "Delete a user, ending their sessions",
            admin,
            &[
                ("204", no_content("Deleted.")),
                ("404", not_found),
                ("409", last_admin),
                ("503", busy),
            ],
            json!({"parameters": user_id}),
        ),
    );

    let mut schemes = Map::new();
    if part == Part::Router {
        let scopes: Map<String, Value> = state
            .config
            .scopes_supported
            .iter()
            .map(|scope| (scope.clone(), Value::String(format!("the `{scope}` scope"))))
            .collect();
        schemes.insert(
            OAUTH2_SCHEME.to_owned(),
            json!({
                "type": "oauth2",
                "description": "Log in with a username and password (the password grant, for \
                                first-party clients).",
                "flows": {"password": {
                    "tokenUrl": format!("{mount}/token"),
                    "refreshUrl": format!("{mount}/token"),
                    "scopes": scopes,
                }},
            }),
        );
    }
    let mut components = json!({"schemas": schemas()});
    if !schemes.is_empty() {
        components["securitySchemes"] = Value::Object(schemes);
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {"title": "tower-jwt-auth login router", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": components,
    }))
}

/// The routes of external sign-in.
fn external(add: &mut impl FnMut(&str, &str, Value), busy: &Value, too_many: Option<&Value>) {
    let limited = |mut answers: Vec<(&'static str, Value)>| {
        answers.extend(too_many.map(|answer| ("429", answer.clone())));
        answers
    };
    let provider = json!({
        "name": "provider", "in": "path", "required": true,
        "description": "The provider's name, as configured.",
        "schema": {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"},
    });
    let query = |name: &str, required: bool, description: &str| {
        json!({
            "name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": "string"},
        })
    };
    let redirect = json!({
        "description": "To the provider, or back to `redirect_to` with `code`, `link_code` or \
                        `error`.",
        "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
    });
    let page = |description: &str| json!({"description": description, "content": {"text/html": {"schema": {"type": "string"}}}});
    let sign_in = "external sign-in";
    add(
        "/external/{provider}/start",
        "get",
        operation(
            "Start signing in with a provider (a browser navigation)",
            sign_in,
            &limited(vec![
                ("302", redirect.clone()),
                (
                    "400",
                    page("`redirect_to` missing or not allowed, or a link address used up."),
                ),
                ("403", page("Started from another site's page.")),
                ("404", page("No such provider.")),
                ("502", page("The provider answered something unusable.")),
                ("503", page("The provider (or a store) cannot be reached.")),
            ]),
            json!({"parameters": [
                provider.clone(),
                query("redirect_to", false, "A first-party address to come back to."),
                query("code_challenge", false, "The front end's RFC 7636 S256 challenge."),
                query("code_challenge_method", false, "`S256`."),
                query("link", false, "The one-time part of a link address."),
            ]}),
        ),
    );
    add(
        "/external/{provider}/callback",
        "get",
        operation(
            "Where the provider sends the browser back",
            sign_in,
            &limited(vec![
                ("302", redirect),
                ("400", page("No sign-in in progress with this `state`.")),
                ("404", page("No such provider.")),
                ("503", page("A store cannot be reached.")),
            ]),
            json!({"parameters": [
                provider.clone(),
                query("state", true, "The sign-in's state."),
                query("code", false, "The provider's code."),
                query("error", false, "The provider's error."),
                query("iss", false, "RFC 9207: the provider's issuer."),
            ]}),
        ),
    );
    add(
        "/external/{provider}/link",
        "post",
        operation(
            "Link a provider to the signed-in account",
            sign_in,
            &[
                (
                    "200",
                    ok("The address to send the browser to.", "LinkAddress"),
                ),
                (
                    "400",
                    error("`invalid_request`: a malformed body or a `redirect_to` not allowed."),
                ),
                ("404", error("No such provider: `not_found`.")),
                (
                    "413",
                    error("The body is larger than the router reads (8 KiB): `invalid_request`."),
                ),
                ("503", busy.clone()),
            ],
            json!({"parameters": [provider.clone()], "requestBody": json_body("LinkRequest")}),
        ),
    );
    add(
        "/external/{provider}/link",
        "put",
        operation(
            "Link the identity a linking sign-in ended with",
            sign_in,
            &[
                (
                    "204",
                    no_content("Linked (or already linked to this account)."),
                ),
                (
                    "400",
                    error(
                        "`invalid_request` (a malformed body), or `invalid_grant`: the link \
                         code is unknown, used, expired, another account's, or the verifier \
                         does not match.",
                    ),
                ),
                ("404", error("No such provider: `not_found`.")),
                (
                    "409",
                    error(
                        "`identity_taken` (linked to another account) or `provider_taken` \
                         (the account has an identity from this provider).",
                    ),
                ),
                (
                    "413",
                    error("The body is larger than the router reads (8 KiB): `invalid_request`."),
                ),
                ("503", busy.clone()),
            ],
            json!({"parameters": [provider.clone()], "requestBody": json_body("LinkClaim")}),
        ),
    );
    add(
        "/external/{provider}/link",
        "delete",
        operation(
            "Unlink a provider from the signed-in account",
            sign_in,
            &[
                ("204", no_content("Unlinked.")),
                (
                    "404",
                    error("No such provider (`not_found`) or nothing linked (`not_linked`)."),
                ),
                (
                    "409",
                    error(
                        "`last_sign_in_method`: the account has no password and no other identity.",
                    ),
                ),
                ("503", busy.clone()),
            ],
            json!({"parameters": [provider]}),
        ),
    );
}

/// The schemas of the bodies (the error body comes from [`error_schema`]).
fn schemas() -> Value {
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let password = json!({"type": "string", "format": "password"});
    json!({
        "TokenRequest": {
            "type": "object",
            "description": "`grant_type=password` with `username` and `password`, \
                            `grant_type=refresh_token` with `refresh_token`, or \
                            `grant_type=authorization_code` with an external sign-in's `code` \
                            and `code_verifier`; `scope` asks for \
                            fewer scopes than the account (or session) has. A client names \
                            itself with `client_id` (and `client_secret`), or HTTP Basic.",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {
                    "type": "string",
                    "enum": ["password", "refresh_token", "authorization_code"],
                },
                "username": string,
                "code": {"type": "string", "description": "An external sign-in's one-time code."},
                "code_verifier": {
                    "type": "string",
                    "description": "The PKCE verifier whose S256 challenge started the sign-in.",
                },
                "password": password,
                "refresh_token": string,
                "scope": {"type": "string", "description": "Space-separated scopes."},
                "client_id": string,
                "client_secret": password,
            },
        },
        "TokenResponse": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in", "refresh_token", "scope"],
            "properties": {
                "access_token": {"type": "string", "description": "An RFC 9068 JWT."},
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "minimum": 0},
                "refresh_token": string,
                "scope": {"type": "string", "description": "The granted scopes, space-separated."},
            },
        },
        "RevocationRequest": {
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": string,
                "token_type_hint": {"type": "string", "enum": ["refresh_token", "access_token"]},
                "client_id": string,
                "client_secret": password,
            },
        },
        "Empty": {"type": "object", "additionalProperties": false},
        "LinkRequest": {
            "type": "object",
            "additionalProperties": false,
            "required": ["redirect_to", "code_challenge", "code_challenge_method"],
            "properties": {
                "redirect_to": {"type": "string", "format": "uri"},
                "code_challenge": {
                    "type": "string",
                    "description": "The S256 challenge of a PKCE verifier the front end keeps.",
                },
                "code_challenge_method": {"type": "string", "enum": ["S256"]},
            },
        },
        "LinkClaim": {
            "type": "object",
            "additionalProperties": false,
            "required": ["link_code", "code_verifier"],
            "properties": {
                "link_code": {
                    "type": "string",
                    "description": "The `link_code` the linking sign-in ended with.",
                },
                "code_verifier": string,
            },
        },
        "LinkAddress": {
            "type": "object",
            "required": ["authorization_url"],
            "properties": {
                "authorization_url": {
                    "type": "string",
                    "format": "uri",
                    "description": "Where to send the browser; usable once, for a minute.",
                },
            },
        },
        "Jwks": {
            "type": "object",
            "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
        },
        "User": {
            "type": "object",
            "description": "An account as it may be shown: never a password hash.",
            "required": ["sub", "username", "email", "roles", "scopes", "disabled", "email_verified"],
            "properties": {
                "sub": string,
                "username": string,
                "email": {"type": ["string", "null"]},
                "roles": strings,
                "scopes": strings,
                "disabled": {"type": "boolean"},
                "email_verified": {"type": "boolean"},
            },
        },
        "UserList": {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
        "UserChange": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "disabled": {"type": "boolean"},
                "roles": strings,
                "scopes": strings,
                "email_verified": {"type": "boolean"},
            },
        },
        "Registration": {
            "type": "object",
            "additionalProperties": false,
            "required": ["username", "password"],
            "properties": {"username": string, "password": password, "email": string},
        },
        "PasswordChange": {
            "type": "object",
            "additionalProperties": false,
            "required": ["current_password", "new_password"],
            "properties": {"current_password": password, "new_password": password},
        },
        "AccountDeletion": {
            "type": "object",
            "additionalProperties": false,
            "required": ["password"],
            "properties": {"password": password},
        },
        "MailRequest": {
            "type": "object",
            "description": "The account's address, or its username.",
            "additionalProperties": false,
            "properties": {"email": string, "username": string},
        },
        "PasswordReset": {
            "type": "object",
            "additionalProperties": false,
            "required": ["token", "new_password"],
            "properties": {"token": string, "new_password": password},
        },
        "EmailVerification": {
            "type": "object",
            "additionalProperties": false,
            "required": ["token"],
            "properties": {"token": string},
        },
        "Accepted": {
            "type": "object",
            "required": ["status", "detail"],
            "properties": {"status": {"type": "string", "enum": ["accepted"]}, "detail": string},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::TokenIssuer;

    /// Where `written` has something `read` lacks or differs.
    fn differences(written: &Value, read: &Value, at: String, out: &mut Vec<String>) {
        match (written, read) {
            (Value::Object(w), Value::Object(r)) => {
                for (key, value) in w {
                    match r.get(key) {
                        Some(other) => differences(value, other, format!("{at}/{key}"), out),
                        None => out.push(format!("{at}/{key} lost")),
                    }
                }
            }
            (Value::Array(w), Value::Array(r)) if w.len() == r.len() => {
                for (i, (a, b)) in w.iter().zip(r).enumerate() {
                    differences(a, b, format!("{at}/{i}"), out);
                }
            }
            _ if written != read => out.push(format!("{at}: {written} became {read}")),
            _ => {}
        }
    }

    #[test]
    fn the_fragments_parse() {
        let auth = AuthRouter::builder(
            TokenIssuer::generate_ed25519("https://issuer.example", "api").unwrap(),
        )
        .build()
        .unwrap();
        for part in [Part::Router, Part::Admin] {
            let value = json_document(&auth.state, "/auth", part).unwrap();
            let parsed: Result<OpenApi, _> = serde_json::from_value(value.clone());
            assert!(parsed.is_ok(), "{:?}", parsed.err());
            // Nothing written is lost on the way through utoipa's types.
            let back = serde_json::to_value(parsed.unwrap()).unwrap();
            let mut lost = Vec::new();
            differences(&value, &back, String::new(), &mut lost);
            assert!(lost.is_empty(), "{lost:#?}");
        }
    }
}
