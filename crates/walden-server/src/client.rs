//! A small blocking client for the admin commands (`status`, `checkpoint`).

use anyhow::{anyhow, bail, Context as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A connection to one server.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `base` (`http://...` or `https://...`), sending `token` if given and
    /// trusting only `ca_cert` when given (else the usual web roots).
    pub fn new(base: &str, token: Option<String>, ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--server must start with http:// or https://, got `{base}`");
        }
        let mut builder = ureq::AgentBuilder::new().timeout(Duration::from_secs(60));
        if let Some(ca) = ca_cert {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("cannot read {}", ca.display()))?
            {
                let cert = cert.with_context(|| format!("bad PEM in {}", ca.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("bad certificate in {}", ca.display()))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder = builder.tls_config(Arc::new(config));
        }
        Ok(Client {
            agent: builder.build(),
            base,
            token,
        })
    }

    fn call(&self, method: &str, path: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.request(method, &url);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let response = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/error/message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or(body);
                bail!("{method} {url}: the server answered {code}: {message}");
            }
            Err(e) => return Err(anyhow!("{method} {url}: {e}")),
        };
        let text = response
            .into_string()
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{method} {url}: the answer is not JSON"))
    }

    /// GET `path`, expecting JSON.
    pub fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.call("GET", path)
    }

    /// POST `path` with no body, expecting JSON.
    pub fn post_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.call("POST", path)
    }
}
