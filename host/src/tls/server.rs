//! The server side of a TLS listener: its certificates read from PEM files,
//! one chosen per handshake by the client's SNI ([`SniResolver`]), ALPN
//! `http/1.1`, TLS 1.2 and 1.3.

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::PathBuf;
use std::sync::Arc;

use super::names::{check_name, NameMap};
use super::{pem, provider, ALPN_HTTP11};

/// A TLS setting that cannot be used: the key (relative to the `tls` table) and why.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct TlsConfigError {
    /// The key, as a path below `tls`: `certs[1].key`.
    pub key: String,
    /// Why, naming the file where one is involved.
    pub reason: String,
}

fn err(key: String, reason: String) -> TlsConfigError {
    TlsConfigError { key, reason }
}

/// One certificate of a listener, as configured.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// PEM certificate chain, leaf first (`cert`).
    pub cert: PathBuf,
    /// PEM private key of the leaf (`key`).
    pub key: PathBuf,
    /// Server names it is served for (`names`); exact or `*.` wildcards.
    pub names: Vec<String>,
}

/// Picks a listener's certificate by SNI; a client that sends no name, or a
/// name no certificate lists, gets the default (the first configured).
#[derive(Debug)]
pub struct SniResolver {
    /// Certificates by the names they are listed for.
    by_name: NameMap<Arc<CertifiedKey>>,
    /// The first configured certificate.
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// The certificate for `sni`.
    pub fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        sni.and_then(|n| self.by_name.get(n))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).clone())
    }
}

/// Reads `certs` and builds the listener's rustls config.
pub fn server_config(certs: &[CertFiles]) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let mut by_name = NameMap::default();
    let mut default = None;
    if certs.is_empty() {
        return Err(err(
            "certs".into(),
            "needs at least one `{ cert = \"...\", key = \"...\" }`".into(),
        ));
    }
    for (i, files) in certs.iter().enumerate() {
        let key = load(i, files)?;
        for (j, name) in files.names.iter().enumerate() {
            let at = || format!("certs[{i}].names[{j}]");
            check_name(name).map_err(|why| err(at(), why))?;
            if !by_name.insert(name, key.clone()) {
                return Err(err(
                    at(),
                    format!("`{name}` is listed for another certificate"),
                ));
            }
        }
        default.get_or_insert(key);
    }
    let resolver = SniResolver {
        by_name,
        default: default.ok_or_else(|| err("certs".into(), "is empty".into()))?,
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("certs".into(), e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Reads one certificate chain and its key, and checks that they match.
fn load(i: usize, files: &CertFiles) -> Result<Arc<CertifiedKey>, TlsConfigError> {
    let cert_key = || format!("certs[{i}].cert");
    let key_key = || format!("certs[{i}].key");
    let chain = pem::read(&files.cert)
        .and_then(|b| pem::certs(&files.cert, &b))
        .map_err(|why| err(cert_key(), why))?;
    let private = pem::read(&files.key)
        .and_then(|b| pem::key(&files.key, &b))
        .map_err(|why| err(key_key(), why))?;
    match CertifiedKey::from_der(chain, private, &provider()) {
        Ok(k) => Ok(Arc::new(k)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(err(
            key_key(),
            format!(
                "`{}` is not the key of the certificate in `{}`",
                files.key.display(),
                files.cert.display()
            ),
        )),
        Err(e) => Err(err(
            key_key(),
            format!(
                "`{}` with `{}` is unusable: {e}",
                files.key.display(),
                files.cert.display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(name: &str, names: &[&str]) -> CertFiles {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/tls"));
        CertFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
            names: names.iter().map(ToString::to_string).collect(),
        }
    }

    fn resolver(certs: &[CertFiles]) -> SniResolver {
        let mut by_name = NameMap::default();
        let mut default = None;
        for (i, f) in certs.iter().enumerate() {
            let key = load(i, f).expect("test certificate loads");
            for n in &f.names {
                by_name.insert(n, key.clone());
            }
            default.get_or_insert(key);
        }
        SniResolver {
            by_name,
            default: default.expect("a certificate"),
        }
    }

    #[test]
    fn sni_picks_the_certificate_and_the_first_is_the_default() {
        let certs = [
            files("a", &["a.example", "*.a.example"]),
            files("b", &["b.example"]),
        ];
        let r = resolver(&certs);
        let leaf = |sni| r.pick(sni).cert[0].clone();
        let (a, b) = (leaf(Some("a.example")), leaf(Some("b.example")));
        assert_ne!(a, b);
        assert_eq!(leaf(Some("B.Example")), b);
        assert_eq!(leaf(Some("x.a.example")), a);
        assert_eq!(leaf(Some("unknown.example")), a);
        assert_eq!(leaf(None), a);
        assert!(server_config(&certs).is_ok());
    }

    #[test]
    fn a_name_listed_twice_or_malformed_is_refused() {
        let twice = [files("a", &["a.example"]), files("b", &["A.example"])];
        let e = server_config(&twice).expect_err("duplicate name");
        assert_eq!(e.key, "certs[1].names[0]");
        assert_eq!(e.reason, "`A.example` is listed for another certificate");
        let bad = [files("a", &["a example"])];
        let e = server_config(&bad).expect_err("bad name");
        assert_eq!(e.key, "certs[0].names[0]");
        let e = server_config(&[]).expect_err("no certs");
        assert_eq!(e.key, "certs");
    }
}
