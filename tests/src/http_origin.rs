//! A plain-HTTP test origin on hyper, over TCP or TLS. It records every request (see
//! [`crate::server::Seen`]) and answers by path:
//! - `/echo`: 200, the request body streamed back as it arrives (chunked);
//! - `/hop`: 200 with hop-by-hop headers of its own (`Connection: X-Resp-Secret`,
//!   `X-Resp-Secret`, `Keep-Alive`) beside `X-Resp-Kept: yes`;
//! - anything else: 200 `hello from origin\n`, with `X-Origin-Conn: <n>` naming
//!   the connection (accept order) that carried the request.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;

use crate::server::{Record, Seen, Server};

type Body = BoxBody<Bytes, hyper::Error>;

/// Starts the origin.
pub async fn http() -> Server {
    Server::spawn(serve).await
}

/// Starts the origin behind TLS terminated with `config` (see [`crate::tls`]).
pub async fn https(config: Arc<rustls::ServerConfig>) -> Server {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    Server::spawn(move |stream, rec, conn| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                serve(tls, rec, conn).await;
            }
        }
    })
    .await
}

async fn serve<S>(stream: S, rec: Arc<Record>, conn: usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let rec = rec.clone();
        async move { Ok::<_, Infallible>(answer(&rec, conn, req)) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn full(text: &'static str) -> Body {
    Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed()
}

fn answer(rec: &Record, conn: usize, req: Request<Incoming>) -> Response<Body> {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    rec.push_request(Seen {
        conn,
        method: req.method().to_string(),
        target: target.clone(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_string(), v)
            })
            .collect(),
    });
    let builder = Response::builder().status(200);
    let res = match req.uri().path() {
        "/echo" => builder.body(req.into_body().boxed()),
        "/hop" => builder
            .header("Connection", "X-Resp-Secret")
            .header("X-Resp-Secret", "1")
            .header("Keep-Alive", "timeout=5")
            .header("X-Resp-Kept", "yes")
            .body(full("hop\n")),
        _ => builder
            .header("X-Origin-Conn", conn.to_string())
            .body(full("hello from origin\n")),
    };
    res.unwrap()
}
