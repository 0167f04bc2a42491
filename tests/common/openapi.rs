//! Holds an OpenAPI document to the answers really given: every answer to a documented
//! operation must have a documented status, and its body must validate against the
//! documented schema (JSON Schema 2020-12, as OpenAPI 3.1 uses). The tests of the router run
//! every request they send through [`checked`], so each error path they exercise is checked
//! against the document too.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use http::header::CONTENT_TYPE;
use serde_json::{Value, json};

/// `app`, with the login router mounted at `/auth`, its answers checked against
/// `auth.openapi("/auth")` (with the `openapi` feature; as it is without).
pub fn documented(auth: &tower_jwt_auth::router::AuthRouter, app: Router) -> Router {
    #[cfg(feature = "openapi")]
    {
        let document = serde_json::to_value(auth.openapi("/auth").unwrap()).unwrap();
        checked(document, app)
    }
    #[cfg(not(feature = "openapi"))]
    {
        let _ = auth;
        app
    }
}

/// `router` with every answer to an operation of `document` checked against it (a mismatch
/// panics, failing the test that sent the request).
pub fn checked(document: Value, router: Router) -> Router {
    let document = Arc::new(document);
    router.layer(from_fn(move |request: Request, next: Next| {
        let document = Arc::clone(&document);
        async move {
            let method = request.method().as_str().to_ascii_lowercase();
            let path = request.uri().path().to_owned();
            let response = next.run(request).await;
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let content_type = parts
                .headers
                .get(CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned());
            check_answer(
                &document,
                &method,
                &path,
                parts.status.as_u16(),
                content_type.as_deref(),
                &bytes,
            );
            Response::from_parts(parts, Body::from(bytes))
        }
    }))
}

/// The operation of `document` that serves `method` `path`, if it documents one: a template
/// segment `{name}` matches any one segment.
pub fn operation<'a>(document: &'a Value, method: &str, path: &str) -> Option<&'a Value> {
    let segments: Vec<&str> = path.split('/').collect();
    document["paths"]
        .as_object()?
        .iter()
        .find(|(template, _)| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| {
                    part == segment || part.starts_with('{') && !segment.is_empty()
                })
        })
        .and_then(|(_, item)| item.get(method))
}

/// Follows a `$ref` into `document`'s components.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => document
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{pointer} is not in the document")),
        None => value,
    }
}

/// Panics unless the answer `status` with `body` to `method` `path` is what `document` says
/// (answers to operations it does not have are not its business).
pub fn check_answer(
    document: &Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) {
    let Some(operation) = operation(document, method, path) else {
        return;
    };
    let responses = &operation["responses"];
    let Some(response) = responses.get(status.to_string()) else {
        panic!(
            "{method} {path} answered {status}, which its operation does not document \
             (documented: {:?}); body: {}",
            responses.as_object().map(|r| r.keys().collect::<Vec<_>>()),
            String::from_utf8_lossy(body)
        );
    };
    let response = resolve(document, response);
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(
            body.is_empty(),
            "{method} {path} {status}: a body where the document has none: {}",
            String::from_utf8_lossy(body)
        );
        return;
    };
    let media = content_type
        .map(|c| c.split(';').next().unwrap().trim())
        .unwrap_or_else(|| panic!("{method} {path} {status}: no content-type"));
    let Some(schema) = content.get(media).and_then(|m| m.get("schema")) else {
        panic!(
            "{method} {path} {status}: content-type {media} is not documented ({:?})",
            content.keys().collect::<Vec<_>>()
        );
    };
    if media != "application/json" && !media.ends_with("+json") {
        // Text: the media type is the contract.
        return;
    }
    let instance: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{method} {path} {status}: not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    // The schema, with the document's components beside it for its references.
    let mut root = json!({"components": document["components"]});
    if let Value::Object(schema) = schema {
        for (key, value) in schema {
            root[key] = value.clone();
        }
    }
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: the schema does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: the body does not match the documented schema: {errors:?}\nbody: {instance}"
    );
}
