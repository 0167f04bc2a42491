//! A tonic gRPC service (the standard health service) behind `BearerAuthLayer` and
//! `RequireScopeLayer`, and a tonic client that shows the three outcomes.
//!
//! ```text
//! cargo run --example tonic_grpc
//! ```
//!
//! It serves on 127.0.0.1:50051 (`BIND` to change), calls itself with no token, a token
//! without the `health:read` scope and a token with it, prints the three results
//! (`Unauthenticated`, `PermissionDenied`, OK), and keeps serving until Ctrl-C.

use std::error::Error;
use std::future::Future;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_jwt_auth::Verifier;
use tower_jwt_auth::bearer::BearerAuthLayer;
use tower_jwt_auth::require::RequireScopeLayer;

#[path = "support/demo.rs"]
pub mod demo;

/// Serves the health service from `listener`, every call authenticated and requiring the
/// `health:read` scope, until `shutdown` completes.
///
/// # Errors
///
/// When the server fails.
pub async fn serve(
    listener: TcpListener,
    verifier: Verifier,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    Server::builder()
        .layer(BearerAuthLayer::new(verifier))
        .layer(RequireScopeLayer::all(["health:read"])?)
        .add_service(health)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await?;
    Ok(())
}

/// Calls `Health/Check` at `address` (`http://host:port`), with this bearer token if any.
///
/// # Errors
///
/// When the connection fails; a refused call is `Ok(Err(status))`.
pub async fn check(
    address: String,
    token: Option<String>,
) -> Result<Result<i32, tonic::Status>, Box<dyn Error + Send + Sync>> {
    let channel = Channel::from_shared(address)?.connect().await?;
    let authorization = match token {
        Some(token) => Some(format!("Bearer {token}").parse()?),
        None => None,
    };
    let mut client =
        HealthClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            if let Some(value) = &authorization {
                request
                    .metadata_mut()
                    .insert("authorization", Clone::clone(value));
            }
            Ok(request)
        });
    let reply = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    Ok(reply.map(|response| response.into_inner().status))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:50051".to_owned());
    let (verifier, signer) = demo::keys()?;
    let listener = TcpListener::bind(&bind).await?;
    let address = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(serve(listener, verifier, async {
        let _ = tokio::signal::ctrl_c().await;
    }));

    let without_scope = demo::token(&signer, "bob", &["user"], "profile")?;
    let with_scope = demo::token(&signer, "alice", &["user"], "health:read")?;
    for (label, token) in [
        ("no token", None),
        ("token without health:read", Some(without_scope)),
        ("token with health:read", Some(with_scope)),
    ] {
        match check(address.clone(), token).await? {
            Ok(status) => println!("{label:28} -> OK (serving status {status})"),
            Err(status) => println!("{label:28} -> {:?}: {}", status.code(), status.message()),
        }
    }
    println!("serving on {address} until Ctrl-C");
    server.await??;
    Ok(())
}
