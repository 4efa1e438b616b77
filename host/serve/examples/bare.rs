//! The baseline of the intake benchmark: an axum handler for
//! `POST /v1/events` that reads the body and answers as the service does,
//! with no authentication, no parsing and no store. `cargo xtask bench
//! serve` measures the service against it in the same run.

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

#[tokio::main]
async fn main() {
    let app = Router::new().route(
        "/v1/events",
        post(|body: Bytes| async move {
            let _ = body.len();
            (
                [("content-type", "application/json")],
                r#"{"duplicate":false}"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on loopback");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("the bound address")
    );
    axum::serve(listener, app).await.expect("the server runs");
}
