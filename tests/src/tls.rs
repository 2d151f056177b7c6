//! TLS for the tests: a throwaway certificate authority ([`Ca`], made with
//! rcgen for each test) that issues server certificates, writes them as PEM
//! files for upgate's config, and builds the rustls configs of test origins
//! and clients; plus TLS and wss clients that report the certificate they got.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

use crate::within;

/// A wss client connection.
pub type Wss = WebSocketStream<TlsStream<TcpStream>>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority that lives for one test, with a folder for its files.
pub struct Ca {
    /// Signs the leaves.
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate.
    der: CertificateDer<'static>,
    /// The CA certificate, PEM.
    pem: String,
    /// Where PEM files go (removed on drop).
    dir: PathBuf,
    /// Files written so far, to name the next one.
    files: AtomicUsize,
}

/// A server certificate and its key, in memory and as PEM files.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The certificate.
    pub der: CertificateDer<'static>,
    /// Its private key (PKCS#8).
    key: Vec<u8>,
    /// PEM file of the certificate.
    pub cert_path: PathBuf,
    /// PEM file of the key.
    pub key_path: PathBuf,
}

impl Ca {
    /// A new CA, named `name` in its certificate.
    pub fn new(name: &str) -> Ca {
        static DIRS: AtomicUsize = AtomicUsize::new(0);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "upgate-tests-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            der: cert.der().clone(),
            pem: cert.pem(),
            dir,
            files: AtomicUsize::new(0),
        }
    }

    fn write(&self, ext: &str, text: &str) -> PathBuf {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{n}.{ext}"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(ToString::to_string).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            der: cert.der().clone(),
            key: key.serialize_der(),
            cert_path: self.write("pem", &cert.pem()),
            key_path: self.write("key", &key.serialize_pem()),
        }
    }

    /// The CA certificate as a PEM file (for an upstream's `tls.ca`).
    pub fn ca_path(&self) -> PathBuf {
        self.write("pem", &self.pem)
    }

    /// A client config trusting only this CA, offering ALPN `http/1.1`.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// The folder its files are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server config serving `leaf` (for test origins).
pub fn server_config(leaf: &Leaf) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.clone()));
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der.clone()], key)
        .unwrap();
    Arc::new(config)
}

/// Connects to `addr` and runs a TLS handshake asking for `sni` (bounded).
pub async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = within("tcp connect", TcpStream::connect(addr)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    within(
        "tls handshake",
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
}

/// The certificate the server presented on `tls`.
pub fn served_cert(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    let certs = tls.get_ref().1.peer_certificates().unwrap();
    certs[0].clone().into_owned()
}

/// A wss:// client: TLS to `addr` asking for `sni`, then the WebSocket
/// handshake to `path` with `Host: sni`. Returns the client and the
/// certificate the server presented.
pub async fn wss_connect(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    config: Arc<ClientConfig>,
) -> (Wss, CertificateDer<'static>) {
    let tls = connect(addr, sni, config).await.unwrap();
    let cert = served_cert(&tls);
    let req = format!("wss://{sni}{path}").into_client_request().unwrap();
    let (ws, _) = within("wss handshake", tokio_tungstenite::client_async(req, tls))
        .await
        .unwrap();
    (ws, cert)
}

/// Sends `GET path` with `Host: host` and `Connection: close` over `tls`;
/// returns the whole answer as text (bounded).
pub async fn get(mut tls: TlsStream<TcpStream>, host: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    within("https request", tls.write_all(req.as_bytes()))
        .await
        .unwrap();
    let mut out = Vec::new();
    // A peer may end without close_notify; what arrived is the answer.
    let _ = within("https response", tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
