//! ClientHello parser tests, on hellos rustls writes and on hand-broken ones.

#![allow(clippy::unwrap_used)]

use super::*;
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use rustls_pki_types::ServerName;
use std::sync::Arc;

/// The bytes a rustls client sends first when connecting to `name`.
fn hello_for(name: &str) -> Vec<u8> {
    let config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// `hello`'s handshake message re-framed into records of at most `size` bytes.
fn reframe(hello: &[u8], size: usize) -> Vec<u8> {
    let message = &hello[5..];
    let mut out = Vec::new();
    for chunk in message.chunks(size) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[test]
fn finds_the_server_name() {
    let hello = hello_for("A.Example");
    assert_eq!(
        parse(&hello),
        Ok(Parsed::Complete(Some("a.example".into())))
    );
}

#[test]
fn an_ip_address_sends_no_server_name() {
    let hello = hello_for("127.0.0.1");
    assert_eq!(parse(&hello), Ok(Parsed::Complete(None)));
}

#[test]
fn every_prefix_is_partial() {
    let hello = hello_for("b.example");
    for end in 0..hello.len() {
        assert_eq!(
            parse(&hello[..end]),
            Ok(Parsed::Partial),
            "prefix of {end} bytes"
        );
    }
}

#[test]
fn a_hello_split_across_records_is_reassembled() {
    let one = hello_for("split.example");
    let hello = reframe(&one, 40);
    assert!(hello.len() > one.len() + 3 * 5, "expected several records");
    assert_eq!(
        parse(&hello),
        Ok(Parsed::Complete(Some("split.example".into())))
    );
    assert_eq!(parse(&hello[..hello.len() - 1]), Ok(Parsed::Partial));
}

#[tokio::test]
async fn reads_a_hello_arriving_in_pieces() {
    let hello = hello_for("slow.example");
    let (mut client, mut server) = tokio::io::duplex(64);
    let sent = hello.clone();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for piece in sent.chunks(7) {
            client.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        client
    });
    let mut buf = BytesMut::new();
    let sni = read(&mut server, &mut buf).await.unwrap();
    assert_eq!(sni.as_deref(), Some("slow.example"));
    assert_eq!(
        &buf[..],
        &hello[..],
        "every byte read is kept for the upstream"
    );
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn a_client_that_leaves_early_is_an_error() {
    let hello = hello_for("a.example");
    let mut short: &[u8] = &hello[..20];
    let mut buf = BytesMut::new();
    assert_eq!(read(&mut short, &mut buf).await, Err(HelloError::Closed));
}

#[test]
fn plain_http_is_not_tls() {
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\n\r\n"),
        Err(HelloError::NotTls(b'G'))
    );
}

#[test]
fn garbage_is_refused() {
    let hello = hello_for("a.example");
    // A record of another type after the first.
    let mut two = reframe(&hello, 50);
    two[55] = 23;
    assert!(matches!(parse(&two), Err(HelloError::Malformed(_))));
    // Record version 2.
    let mut bad = hello.clone();
    bad[1] = 2;
    assert!(matches!(parse(&bad), Err(HelloError::Malformed(_))));
    // A zero-length record.
    assert!(matches!(
        parse(&[22, 3, 1, 0, 0]),
        Err(HelloError::Malformed(_))
    ));
    // Not a ClientHello (a ServerHello, type 2).
    let mut bad = hello.clone();
    bad[5] = 2;
    assert!(matches!(parse(&bad), Err(HelloError::Malformed(_))));
    // A session id claiming more bytes than the message holds.
    let mut bad = hello.clone();
    bad[5 + 4 + 2 + 32] = 200;
    assert!(matches!(parse(&bad), Err(HelloError::Malformed(_))));
    // Extensions whose length runs past the message.
    let mut bad = hello.clone();
    let body_end = hello.len();
    bad[body_end - 1] ^= 0xff;
    let _ = parse(&bad); // Must not panic, whatever the flipped byte meant.
                         // Random bytes after a handshake record header never panic.
    let mut seed = 0x2545_f491_u32;
    for _ in 0..2000 {
        let mut bytes = vec![22, 3, 1, 0, 60];
        for _ in 0..60 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            bytes.push(seed as u8);
        }
        bytes[5] = 1;
        let _ = parse(&bytes);
    }
}

#[test]
fn a_hello_claiming_more_than_the_bound_is_refused() {
    // ClientHello of 1 MiB announced.
    let bytes = [22, 3, 1, 0, 4, 1, 0x10, 0, 0];
    assert_eq!(parse(&bytes), Err(HelloError::TooLarge));
    // Records that never complete a hello within the bound.
    let mut endless = Vec::new();
    endless.extend_from_slice(&[22, 3, 1, 0x40, 0x00, 1, 0, 0x40, 0x00]);
    endless.resize(MAX_HELLO, 0);
    assert_eq!(parse(&endless), Err(HelloError::TooLarge));
}
