//! The same layers under plain hyper 1 and hyper-util, no framework: `GET /items` behind
//! `BearerAuthLayer` and `RequireScopeLayer`.
//!
//! ```text
//! cargo run --example hyper_plain
//! ```
//!
//! It listens on 127.0.0.1:3001 (`BIND` to change) and prints a demo token with curl lines.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::require::RequireScopeLayer;
use tower_jwt_auth::response::ResponseBody;
use tower_jwt_auth::{Claims, ConfigError, Verifier};

#[path = "support/demo.rs"]
pub mod demo;

/// The response body after both layers: the handler's body, or a rejection's.
pub type Body = ResponseBody<ResponseBody<Full<Bytes>>>;

async fn items(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let sub = request
        .extensions()
        .get::<Claims>()
        .and_then(Claims::subject)
        .unwrap_or("?");
    let response = match request.uri().path() {
        "/items" => Response::new(Full::from(format!("[\"item-1\",\"item-2\"] for {sub}\n"))),
        _ => {
            let mut response = Response::new(Full::from("not found\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

/// The tower service: authenticate, then require `items:read`, then the handler.
///
/// # Errors
///
/// A `ConfigError` if a layer's configuration were invalid (it is not).
pub fn service(
    verifier: Verifier,
) -> Result<
    impl tower::Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static,
    ConfigError,
> {
    Ok(ServiceBuilder::new()
        .layer(BearerAuthLayer::new(verifier))
        .layer(RequireScopeLayer::all(["items:read"])?)
        .service_fn(items))
}

/// Serves connections from `listener` (HTTP/1.1 and HTTP/2) until `shutdown` completes.
///
/// # Errors
///
/// When accepting a connection fails.
pub async fn serve(
    listener: TcpListener,
    verifier: Verifier,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let service = service(verifier)?;
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            // A connection's error ends that connection only.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let (verifier, signer) = demo::keys()?;
    let reader = demo::token(&signer, "alice", &["user"], "items:read")?;
    let other = demo::token(&signer, "bob", &["user"], "profile")?;
    let listener = TcpListener::bind(&bind).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base}; try:");
    println!("  curl -i {base}/items");
    println!("  curl -i -H 'Authorization: Bearer {reader}' {base}/items");
    println!("  curl -i -H 'Authorization: Bearer {other}' {base}/items   # 403, no items:read");
    serve(listener, verifier, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
