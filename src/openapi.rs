//! OpenAPI 3.1 documents on [`utoipa`]: the security of an application's routes, derived from
//! the very layers that guard them, and (with the `router` feature) the login router's own
//! routes.
//!
//! ```
//! use http::Method;
//! use tower_jwt_auth::bearer::BearerAuthLayer;
//! use tower_jwt_auth::openapi::{Guard, secure};
//! use tower_jwt_auth::require::RequireScopeLayer;
//! use tower_jwt_auth::{Algorithm, KeySet, Verifier};
//! use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
//! use utoipa::openapi::{OpenApiBuilder, ResponseBuilder};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &[7; 32])?)
//!     .issuer("https://issuer.example")
//!     .audience("api")
//!     .build()?;
//! // The layers the routes use...
//! let bearer = BearerAuthLayer::new(verifier);
//! let read = RequireScopeLayer::all(["items:read"])?;
//!
//! // ...and the document of the routes (here built by hand; `#[utoipa::path]` works alike).
//! let list = OperationBuilder::new()
//!     .response("200", ResponseBuilder::new().description("the items"))
//!     .build();
//! let mut document = OpenApiBuilder::new()
//!     .paths(PathsBuilder::new().path("/items", PathItem::new(HttpMethod::Get, list)))
//!     .build();
//!
//! // The route's requirement comes from the same layers: the scope is written once.
//! secure(&mut document, &Method::GET, "/items", &[Guard::from(&bearer), Guard::from(&read)])?;
//!
//! let json: serde_json::Value = serde_json::from_str(&document.to_json()?)?;
//! let operation = &json["paths"]["/items"]["get"];
//! assert_eq!(operation["security"], serde_json::json!([{"bearer": ["items:read"]}]));
//! assert_eq!(operation["responses"]["401"]["$ref"], "#/components/responses/Unauthorized");
//! assert_eq!(operation["responses"]["403"]["$ref"], "#/components/responses/Forbidden");
//! # Ok(()) }
//! ```
//!
//! [`secure`] sets an operation's `security` from [`Guard`]s made from the layers in front of
//! it ([`BearerAuthLayer`], [`RequireScopeLayer`], [`RequireRoleLayer`]) and documents the
//! answers they give: 401 with the `WWW-Authenticate` challenge and the error body, and 403
//! when a scope or role is required. Every requirement is offered through each security scheme
//! the document defines:
//!
//! - [`BEARER_SCHEME`] (`http`, `bearer`, JWT), added when missing; OpenAPI 3.1 lets its list
//!   name the scopes and roles required;
//! - [`OAUTH2_SCHEME`], when the document has it: the login router's password flow (its
//!   `tokenUrl` and `refreshUrl`), which is how Swagger UI's "Authorize" button logs in. Its
//!   list names the scopes.
//!
//! Roles are not OAuth scopes: they appear in the bearer scheme's list and in the operation's
//! description. An operation behind an [optional](BearerAuthLayer::optional) bearer layer also
//! accepts no credentials at all (an empty requirement).
#![cfg_attr(
    feature = "router",
    doc = "\n[`AuthRouter::openapi`](crate::router::AuthRouter::openapi) documents the router's \
           routes with their request and response bodies and every error, and defines both \
           schemes."
)]

use std::collections::BTreeMap;

use http::Method;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Components, OpenApi, Ref, RefOr, Response, Schema};

use crate::bearer::BearerAuthLayer;
use crate::error::ConfigError;
use crate::require::{RequireRoleLayer, RequireScopeLayer};

pub use utoipa;

/// The name of the bearer-token security scheme (`http`, `bearer`, format JWT).
pub const BEARER_SCHEME: &str = "bearer";

/// The name of the OAuth2 password-flow security scheme of the login router.
pub const OAUTH2_SCHEME: &str = "oauth2";

/// The name of the error body's schema (`{error, error_description}`).
pub const ERROR_SCHEMA: &str = "Error";

/// What one layer in front of a route requires, for its documentation: build it with `From`
/// from the layer itself, so that the document cannot disagree with what is enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// Alternatives: meeting any one of them is enough.
    alternatives: Vec<Need>,
    /// A request without credentials is let through.
    anonymous: bool,
}

/// What one alternative needs: every scope and every role listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Need {
    scopes: Vec<String>,
    roles: Vec<String>,
}

impl Guard {
    /// The alternatives of `listed`: one needing all of them, or one per value.
    fn listed<'a>(
        listed: impl Iterator<Item = &'a str>,
        all: bool,
        need: fn(String) -> Need,
    ) -> Vec<Need> {
        let listed: Vec<String> = listed.map(str::to_owned).collect();
        if all {
            let mut combined = Need::default();
            for value in listed {
                combined.merge(&need(value));
            }
            vec![combined]
        } else {
            listed.into_iter().map(need).collect()
        }
    }
}

impl Need {
    fn merge(&mut self, other: &Need) {
        for scope in &other.scopes {
            if !self.scopes.contains(scope) {
                self.scopes.push(scope.clone());
            }
        }
        for role in &other.roles {
            if !self.roles.contains(role) {
                self.roles.push(role.clone());
            }
        }
    }
}

impl<R> From<&BearerAuthLayer<R>> for Guard {
    /// A valid token (none at all as well, for an optional layer).
    fn from(layer: &BearerAuthLayer<R>) -> Self {
        Self {
            alternatives: vec![Need::default()],
            anonymous: layer.is_optional(),
        }
    }
}

impl<R> From<&RequireScopeLayer<R>> for Guard {
    /// The layer's scopes, all of them or any one.
    fn from(layer: &RequireScopeLayer<R>) -> Self {
        Self {
            alternatives: Self::listed(layer.required(), layer.requires_all(), |scope| Need {
                scopes: vec![scope],
                roles: Vec::new(),
            }),
            anonymous: false,
        }
    }
}

impl<R> From<&RequireRoleLayer<R>> for Guard {
    /// The layer's roles, all of them or any one (a role that implies one through a
    /// hierarchy is accepted too).
    fn from(layer: &RequireRoleLayer<R>) -> Self {
        Self {
            alternatives: Self::listed(layer.required(), layer.requires_all(), |role| Need {
                scopes: Vec::new(),
                roles: vec![role],
            }),
            anonymous: false,
        }
    }
}

/// Documents the security of the operation `method` `path` of `document`: its `security` is
/// what every one of `guards` requires together (the layers in front of the route, outermost
/// first), its responses gain 401, 403 when a scope or role is required, and 503 (keys or
/// revocation store unavailable) unless it documents its own, and its
/// description says which roles it needs. The schemes, the error schema and the two responses
/// are added to the components when missing. Calling it again replaces the security.
///
/// # Errors
///
/// [`ConfigError::InvalidSetting`] when the document has no such operation (a typo would
/// otherwise leave a protected route documented as open), or `guards` is empty.
pub fn secure(
    document: &mut OpenApi,
    method: &Method,
    path: &str,
    guards: &[Guard],
) -> Result<(), ConfigError> {
    let oauth2 = document
        .components
        .as_ref()
        .is_some_and(|c| c.security_schemes.contains_key(OAUTH2_SCHEME));
    secure_with(document, method, path, guards, oauth2)
}

/// [`secure`], offering the requirement through [`OAUTH2_SCHEME`] when `oauth2` (whether or
/// not this document defines it: the router's administration document is merged beside the one
/// that does).
pub(crate) fn secure_with(
    document: &mut OpenApi,
    method: &Method,
    path: &str,
    guards: &[Guard],
    oauth2: bool,
) -> Result<(), ConfigError> {
    if guards.is_empty() {
        return Err(ConfigError::InvalidSetting("no guard to document"));
    }
    let operation = operation_mut(document, method, path).ok_or(ConfigError::InvalidSetting(
        "the document has no operation at this method and path",
    ))?;

    // Every guard must be met: the product of their alternatives.
    let mut alternatives = vec![Need::default()];
    for guard in guards {
        let mut next = Vec::new();
        for have in &alternatives {
            for need in &guard.alternatives {
                let mut both = have.clone();
                both.merge(need);
                if !next.contains(&both) {
                    next.push(both);
                }
            }
        }
        alternatives = next;
    }
    let anonymous = guards.iter().all(|guard| guard.anonymous);
    let mut security = Vec::new();
    for need in &alternatives {
        let mut listed = need.scopes.clone();
        listed.extend(need.roles.iter().cloned());
        security.push(SecurityRequirement::new(BEARER_SCHEME, listed));
        if oauth2 {
            security.push(SecurityRequirement::new(OAUTH2_SCHEME, need.scopes.clone()));
        }
    }
    if anonymous {
        security.push(SecurityRequirement::default());
    }
    operation.security = Some(security);

    let responses = &mut operation.responses.responses;
    responses.insert("401".to_owned(), component_ref("responses", "Unauthorized"));
    let narrowed = alternatives
        .iter()
        .any(|need| !need.scopes.is_empty() || !need.roles.is_empty());
    if narrowed {
        responses.insert("403".to_owned(), component_ref("responses", "Forbidden"));
    }
    // The operation's own 503, if it has one, says more.
    responses
        .entry("503".to_owned())
        .or_insert_with(|| component_ref("responses", "Unavailable"));
    let roles: Vec<String> = alternatives
        .iter()
        .filter(|need| !need.roles.is_empty())
        .map(|need| {
            let names: Vec<String> = need.roles.iter().map(|r| format!("`{r}`")).collect();
            names.join(" and ")
        })
        .collect();
    if !roles.is_empty() {
        let line = format!("Requires the role {}.", roles.join(" or "));
        operation.description = Some(match operation.description.take() {
            Some(text) if text.contains(&line) => text,
            Some(text) => format!("{text}\n\n{line}"),
            None => line,
        });
    }
    add_components(document, narrowed)
}

/// The operation `method` `path` of `document`.
fn operation_mut<'a>(
    document: &'a mut OpenApi,
    method: &Method,
    path: &str,
) -> Option<&'a mut Operation> {
    let item = document.paths.paths.get_mut(path)?;
    let operation = match *method {
        Method::GET => &mut item.get,
        Method::POST => &mut item.post,
        Method::PUT => &mut item.put,
        Method::PATCH => &mut item.patch,
        Method::DELETE => &mut item.delete,
        Method::HEAD => &mut item.head,
        Method::OPTIONS => &mut item.options,
        Method::TRACE => &mut item.trace,
        _ => return None,
    };
    operation.as_mut()
}

/// `{"$ref": "#/components/{kind}/{name}"}`.
pub(crate) fn component_ref<T>(kind: &str, name: &str) -> RefOr<T> {
    RefOr::Ref(Ref::new(format!("#/components/{kind}/{name}")))
}

/// The bearer scheme, the error schema and the 401 (and 403) responses, where missing.
fn add_components(document: &mut OpenApi, forbidden: bool) -> Result<(), ConfigError> {
    let components = document.components.get_or_insert_with(Components::new);
    components
        .security_schemes
        .entry(BEARER_SCHEME.to_owned())
        .or_insert_with(|| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token, in `Authorization: Bearer <token>`."))
                    .build(),
            )
        });
    if !components.schemas.contains_key(ERROR_SCHEMA) {
        components
            .schemas
            .insert(ERROR_SCHEMA.to_owned(), error_schema()?);
    }
    let mut responses: BTreeMap<&str, _> = BTreeMap::new();
    responses.insert(
        "Unauthorized",
        "No token, or one that is not valid (expired, revoked, signed by another key, for \
         another audience...); `WWW-Authenticate: Bearer` says why (RFC 6750), without a \
         code when no token was sent.",
    );
    if forbidden {
        responses.insert(
            "Forbidden",
            "The token is valid but lacks a required scope or role: `error` is \
             `insufficient_scope`, and the challenge names the scopes (RFC 6750).",
        );
    }
    for (name, description) in responses {
        if !components.responses.contains_key(name) {
            components
                .responses
                .insert(name.to_owned(), rejection(description)?);
        }
    }
    if !components.responses.contains_key("Unavailable") {
        let unavailable = from_json(serde_json::json!({
            "description": "The keys or the revocation store the layer depends on cannot be \
                            had (`temporarily_unavailable`); no challenge.",
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{ERROR_SCHEMA}")}}},
        }))?;
        components
            .responses
            .insert("Unavailable".to_owned(), unavailable);
    }
    Ok(())
}

/// The error body: RFC 6749 section 5.2 and RFC 6750 codes with a fixed description.
pub(crate) fn error_schema() -> Result<RefOr<Schema>, ConfigError> {
    from_json(serde_json::json!({
        "type": "object",
        "description": "An error: an RFC 6749 / RFC 6750 code and a fixed, human-readable \
                        description (never an echo of the request).",
        "required": ["error", "error_description"],
        "properties": {
            "error": {"type": "string", "examples": ["invalid_token"]},
            "error_description": {"type": "string", "examples": ["token expired"]},
        },
    }))
}

/// A rejection of the layers: the error body and the challenge.
fn rejection(description: &str) -> Result<RefOr<Response>, ConfigError> {
    from_json(serde_json::json!({
        "description": description,
        "headers": {
            "WWW-Authenticate": {
                "description": "The RFC 6750 challenge: `Bearer`, with `error`, \
                                `error_description`, `scope` and `resource_metadata` where \
                                they apply.",
                "schema": {"type": "string"},
            },
        },
        "content": {
            "application/json": {"schema": {"$ref": format!("#/components/schemas/{ERROR_SCHEMA}")}},
        },
    }))
}

/// A document fragment written as JSON. The fragments are fixed text that the tests parse, so
/// an error is a bug in this crate, reported rather than panicked on.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ConfigError> {
    serde_json::from_value(value).map_err(|_| {
        ConfigError::InvalidSetting("an OpenAPI fragment of this crate does not parse")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::{OpenApiBuilder, ResponseBuilder};

    use super::*;
    use crate::algorithm::Algorithm;
    use crate::keys::KeySet;
    use crate::require::RoleHierarchy;
    use crate::verifier::Verifier;

    fn document(oauth2: bool) -> OpenApi {
        let operation = || {
            OperationBuilder::new()
                .response("200", ResponseBuilder::new().description("ok"))
                .build()
        };
        let mut item = PathItem::new(HttpMethod::Get, operation());
        item.delete = Some(operation());
        let mut document = OpenApiBuilder::new()
            .paths(PathsBuilder::new().path("/things", item))
            .build();
        if oauth2 {
            let scheme: SecurityScheme = serde_json::from_value(json!({
                "type": "oauth2",
                "flows": {"password": {"tokenUrl": "/auth/token", "scopes": {}}},
            }))
            .unwrap();
            let components = document.components.get_or_insert_with(Components::new);
            components
                .security_schemes
                .insert(OAUTH2_SCHEME.to_owned(), scheme);
        }
        document
    }

    fn bearer() -> BearerAuthLayer {
        let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &[7; 32]).unwrap())
            .issuer("https://issuer.example")
            .audience("api")
            .build()
            .unwrap();
        BearerAuthLayer::new(verifier)
    }

    fn operation(document: &OpenApi, method: &str) -> Value {
        serde_json::to_value(document).unwrap()["paths"]["/things"][method].clone()
    }

    #[test]
    fn any_of_several_scopes_is_one_alternative_each_in_every_scheme() {
        let mut doc = document(true);
        let scopes = RequireScopeLayer::any(["a", "b"]).unwrap();
        secure(
            &mut doc,
            &Method::GET,
            "/things",
            &[Guard::from(&bearer()), Guard::from(&scopes)],
        )
        .unwrap();
        let get = operation(&doc, "get");
        assert_eq!(
            get["security"],
            json!([{"bearer": ["a"]}, {"oauth2": ["a"]}, {"bearer": ["b"]}, {"oauth2": ["b"]}])
        );
        assert_eq!(
            get["responses"]["403"]["$ref"],
            "#/components/responses/Forbidden"
        );
        // Only the operation named is changed.
        assert!(operation(&doc, "delete").get("security").is_none());
        let json = serde_json::to_value(&doc).unwrap();
        for pointer in [
            "/components/securitySchemes/bearer",
            "/components/schemas/Error",
            "/components/responses/Unauthorized",
            "/components/responses/Forbidden",
            "/components/responses/Unavailable",
        ] {
            assert!(json.pointer(pointer).is_some(), "{pointer}");
        }
    }

    #[test]
    fn roles_are_named_in_the_bearer_scheme_and_the_description() {
        let mut doc = document(true);
        let hierarchy = RoleHierarchy::new().grant("owner", ["admin"]);
        let admin = RequireRoleLayer::all(["admin", "audit"])
            .unwrap()
            .hierarchy(&hierarchy);
        let write = RequireScopeLayer::all(["w"]).unwrap();
        let guards = [
            Guard::from(&bearer()),
            Guard::from(&admin),
            Guard::from(&write),
        ];
        for _ in 0..2 {
            secure(&mut doc, &Method::DELETE, "/things", &guards).unwrap();
        }
        let delete = operation(&doc, "delete");
        assert_eq!(
            delete["security"],
            json!([{"bearer": ["w", "admin", "audit"]}, {"oauth2": ["w"]}])
        );
        // Twice secured, said once.
        assert_eq!(
            delete["description"],
            "Requires the role `admin` and `audit`."
        );
    }

    #[test]
    fn a_token_alone_documents_401_not_403_and_an_optional_layer_also_no_credentials() {
        let mut doc = document(false);
        secure(&mut doc, &Method::GET, "/things", &[Guard::from(&bearer())]).unwrap();
        let get = operation(&doc, "get");
        assert_eq!(get["security"], json!([{"bearer": []}]));
        assert!(get["responses"].get("403").is_none());
        let json = serde_json::to_value(&doc).unwrap();
        assert!(json.pointer("/components/responses/Forbidden").is_none());

        let optional = bearer().optional();
        secure(&mut doc, &Method::GET, "/things", &[Guard::from(&optional)]).unwrap();
        assert_eq!(
            operation(&doc, "get")["security"],
            json!([{"bearer": []}, {}])
        );
    }

    #[test]
    fn an_operation_that_is_not_there_or_no_guard_is_an_error() {
        let mut doc = document(false);
        let guard = [Guard::from(&bearer())];
        assert!(secure(&mut doc, &Method::POST, "/things", &guard).is_err());
        assert!(secure(&mut doc, &Method::GET, "/thing", &guard).is_err());
        assert!(secure(&mut doc, &Method::CONNECT, "/things", &guard).is_err());
        assert!(secure(&mut doc, &Method::GET, "/things", &[]).is_err());
        assert!(operation(&doc, "get").get("security").is_none());
    }
}
