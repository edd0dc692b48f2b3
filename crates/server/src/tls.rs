//! Connections: plain and TLS listeners that tell handlers who is on the other end (address and,
//! with mTLS, the verified client certificate), and parsing of certificates into the
//! `client_cert` facts the engine matches (SHA-256 fingerprint, serial, subject CN).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use portcullis_core::ClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{ClientAuth, TlsConfig};

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The TCP peer.
    pub addr: SocketAddr,
    /// The client certificate verified by our TLS listener, if any.
    pub cert: Option<Arc<ClientCert>>,
}

impl Connected<IncomingStream<'_, PlainListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Facts about a DER certificate.
pub fn client_cert_from_der(der: &[u8]) -> Option<ClientCert> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject_cn = certificate
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Some(ClientCert {
        id: None,
        fingerprint: Some(hex::encode(Sha256::digest(der))),
        serial: Some(hex::encode(certificate.tbs_certificate.raw_serial())),
        subject_cn,
        subject: Some(certificate.subject().to_string()),
        issuer: Some(certificate.issuer().to_string()),
    })
}

/// Facts about a PEM certificate; also accepts the base64 body without its BEGIN/END lines
/// (as Traefik forwards it).
pub fn client_cert_from_pem(text: &str) -> Option<ClientCert> {
    let text = text.trim();
    if text.contains("-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).ok()?;
        return client_cert_from_der(&pem.contents);
    }
    use base64::Engine;
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    client_cert_from_der(&der)
}

/// A plain TCP listener (with `TCP_NODELAY`) whose connections carry [`PeerInfo`].
#[derive(Debug)]
pub struct PlainListener {
    inner: TcpListener,
}

impl PlainListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener) -> Self {
        PlainListener { inner }
    }
}

impl Listener for PlainListener {
    type Io = TcpStream;
    type Addr = PeerInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (stream, PeerInfo { addr, cert: None });
                }
                Err(error) => accept_backoff(error).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(PeerInfo {
            addr: self.inner.local_addr()?,
            cert: None,
        })
    }
}

async fn accept_backoff(error: io::Error) {
    // Out of file descriptors and similar: wait instead of spinning.
    tracing::warn!(%error, "accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

/// A TLS listener: handshakes run concurrently on their own tasks, so a slow client never
/// holds up the others; completed connections are handed out with their verified client
/// certificate.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, PeerInfo)>,
}

impl TlsListener {
    /// Starts accepting on `inner` with `config`.
    pub fn new(inner: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = inner.local_addr()?;
        let (sender, ready) = mpsc::channel(256);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, addr) = match inner.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        accept_backoff(error).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await;
                    let tls = match handshake {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::debug!(%addr, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%addr, "TLS handshake timed out");
                            return;
                        }
                    };
                    let cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|leaf| client_cert_from_der(leaf.as_ref()))
                        .map(Arc::new);
                    let _ = sender.send((tls, PeerInfo { addr, cert })).await;
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = PeerInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task only ends with the runtime.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(PeerInfo {
            addr: self.local,
            cert: None,
        })
    }
}

/// Builds the rustls configuration of the main listener.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|e| format!("tls.cert_file {}: {e}", tls.cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.cert_file {}: {e}", tls.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no certificate",
            tls.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| format!("tls.key_file {}: {e}", tls.key_file.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = match (&tls.client_ca_file, tls.client_auth) {
        (Some(ca_file), ClientAuth::Optional | ClientAuth::Required) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca_file)
                .map_err(|e| format!("tls.client_ca_file {}: {e}", ca_file.display()))?
            {
                let cert =
                    cert.map_err(|e| format!("tls.client_ca_file {}: {e}", ca_file.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.client_ca_file {}: {e}", ca_file.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            );
            let verifier = if tls.client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("tls.client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: the certificate and key do not match: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
