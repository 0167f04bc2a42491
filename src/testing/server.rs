//! The test issuer's HTTP/1.1 server: discovery, JWKS, the login endpoints, 503 while
//! unavailable, 404 otherwise.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{State, login};

/// Accepts connections until aborted; aborting drops the set, which aborts every connection.
pub(super) async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(answer(&state, request).await) }
        });
        connections.spawn(async move {
            let _closed_or_broken = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Jwks,
    Discovery,
    Authorize,
    Token,
}

async fn answer<B>(state: &State, request: Request<B>) -> Response<Full<Bytes>>
where
    B: http_body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (endpoint, counter) = match request.uri().path() {
        "/jwks.json" => (Endpoint::Jwks, &state.jwks_requests),
        "/.well-known/openid-configuration" => (Endpoint::Discovery, &state.discovery_requests),
        "/authorize" => (Endpoint::Authorize, &state.authorize_requests),
        "/token" => (Endpoint::Token, &state.token_requests),
        _ if !state.available.load(Ordering::Relaxed) => {
            return status(StatusCode::SERVICE_UNAVAILABLE);
        }
        _ => return status(StatusCode::NOT_FOUND),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if !state.available.load(Ordering::Relaxed) {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    match endpoint {
        Endpoint::Authorize => return login::authorize(state, &request),
        Endpoint::Token => return login::token(state, request).await,
        Endpoint::Jwks | Endpoint::Discovery => {}
    }
    if request.method() != Method::GET {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let (document, max_age) = if endpoint == Endpoint::Jwks {
        (state.jwks(), state.jwks_max_age.as_secs())
    } else {
        let issuer = &state.issuer;
        let metadata = serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/jwks.json"),
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "scopes_supported": ["openid", "email", "profile"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [state.algorithm.as_str()],
            "authorization_response_iss_parameter_supported": true,
        });
        (metadata, 3600)
    };
    let mut response = Response::new(Full::new(Bytes::from(document.to_string())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::try_from(format!("max-age={max_age}")) {
        headers.insert(CACHE_CONTROL, value);
    }
    response
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}
