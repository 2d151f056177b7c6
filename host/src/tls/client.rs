//! The client side of a `tls` upstream: which roots verify it (the system's,
//! or a configured CA file), an optional client certificate, and the server
//! name sent as SNI and verified (`server_name`, else each address's host).

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use sha1::{Digest, Sha1};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::server::TlsConfigError;
use super::{pem, provider, ALPN_HTTP11};

/// An upstream's `tls` table, as configured (`tls = true` is all `None`).
#[derive(Clone, Debug, Default)]
pub struct ClientFiles {
    /// `server_name`: SNI and the name the certificate must carry.
    pub server_name: Option<String>,
    /// `ca`: PEM file of the roots to trust instead of the system's.
    pub ca: Option<PathBuf>,
    /// `client_cert`: PEM chain presented to the upstream.
    pub client_cert: Option<PathBuf>,
    /// `client_key`: the client certificate's PEM key.
    pub client_key: Option<PathBuf>,
}

/// How upgate speaks TLS to one upstream.
#[derive(Clone)]
pub struct UpstreamTls {
    /// The rustls client config (roots, client certificate, ALPN `http/1.1`).
    config: Arc<ClientConfig>,
    /// `server_name`, when set; otherwise each address's host is used.
    server_name: Option<ServerName<'static>>,
    /// SHA-1 over the settings and the files' bytes: a reload keeps an
    /// upstream's connection pool only when nothing here changed.
    digest: [u8; 20],
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for UpstreamTls {}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn err(key: &str, reason: String) -> TlsConfigError {
    TlsConfigError {
        key: key.to_string(),
        reason,
    }
}

/// The system's root certificates (read once), or why there are none.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map_or(String::new(), |e| format!(": {e}"));
                return Err(format!(
                    "no system root certificates found{why}; set `ca` to a PEM file of the roots to trust"
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

impl UpstreamTls {
    /// Reads the files of `files` and builds the upstream's TLS client.
    pub fn load(files: &ClientFiles) -> Result<UpstreamTls, TlsConfigError> {
        let mut digest = Sha1::new();
        let server_name = match &files.server_name {
            None => None,
            Some(n) => {
                digest.update(n.as_bytes());
                Some(ServerName::try_from(n.clone()).map_err(|_| {
                    err(
                        "server_name",
                        format!("`{n}` is not a DNS name or IP address"),
                    )
                })?)
            }
        };
        digest.update(b"\0");
        let roots = match &files.ca {
            None => system_roots().map_err(|why| err("ca", why))?,
            Some(path) => {
                let bytes = pem::read(path).map_err(|why| err("ca", why))?;
                digest.update(&bytes);
                let mut roots = RootCertStore::empty();
                for cert in pem::certs(path, &bytes).map_err(|why| err("ca", why))? {
                    roots.add(cert).map_err(|e| {
                        err(
                            "ca",
                            format!("`{}` holds an unusable root: {e}", path.display()),
                        )
                    })?;
                }
                Arc::new(roots)
            }
        };
        digest.update(b"\0");
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| err("ca", e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match (&files.client_cert, &files.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(err("client_key", "missing: `client_cert` needs it".into()))
            }
            (None, Some(_)) => {
                return Err(err("client_cert", "missing: `client_key` needs it".into()))
            }
            (Some(cert_path), Some(key_path)) => {
                let cert_bytes = pem::read(cert_path).map_err(|why| err("client_cert", why))?;
                let chain =
                    pem::certs(cert_path, &cert_bytes).map_err(|why| err("client_cert", why))?;
                let key_bytes = pem::read(key_path).map_err(|why| err("client_key", why))?;
                let key = pem::key(key_path, &key_bytes).map_err(|why| err("client_key", why))?;
                digest.update(&cert_bytes);
                digest.update(b"\0");
                digest.update(&key_bytes);
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    err(
                        "client_key",
                        format!(
                            "`{}` with `{}` is unusable: {e}",
                            key_path.display(),
                            cert_path.display()
                        ),
                    )
                })?
            }
        };
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(UpstreamTls {
            config: Arc::new(config),
            server_name,
            digest: digest.finalize().into(),
        })
    }

    /// The name sent as SNI and verified when connecting to `addr` (`host:port`).
    pub fn name_for(&self, addr: &str) -> Result<ServerName<'static>, String> {
        if let Some(n) = &self.server_name {
            return Ok(n.clone());
        }
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        ServerName::try_from(host.to_string()).map_err(|_| {
            format!("`{host}` is not usable as a TLS server name (set `tls.server_name`)")
        })
    }

    /// Runs the TLS handshake over `tcp`, connected to `addr`.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        addr: &str,
    ) -> Result<TlsStream<TcpStream>, String> {
        let name = self.name_for(addr)?;
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))
    }
}
