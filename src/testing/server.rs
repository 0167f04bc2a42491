//! The test issuer's HTTP/1.1 server: discovery, JWKS, 503 while unavailable, 404 otherwise.

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

use super::State;

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
            let response = answer(&state, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        connections.spawn(async move {
            let _closed_or_broken = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer<B>(state: &State, request: &Request<B>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let counter = match path {
        "/jwks.json" => Some(&state.jwks_requests),
        "/.well-known/openid-configuration" => Some(&state.discovery_requests),
        _ => None,
    };
    if let Some(counter) = counter {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    if !state.available.load(Ordering::Relaxed) {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    if counter.is_none() {
        return status(StatusCode::NOT_FOUND);
    }
    if request.method() != Method::GET {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let (document, max_age) = if path == "/jwks.json" {
        (state.jwks(), state.jwks_max_age.as_secs())
    } else {
        let metadata = serde_json::json!({
            "issuer": state.issuer,
            "jwks_uri": format!("{}/jwks.json", state.issuer),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [state.algorithm.as_str()],
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
