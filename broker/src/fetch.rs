//! HTTP(S) fetches the broker performs for a child (ureq), pinned to addresses the policy
//! checked, under the profile's size and time caps.
//!
//! What keeps a fetch inside its grant: the host was decided by the policy, every address it
//! resolved to was checked, and ureq connects only to those (a resolver that returns them and
//! nothing else), so DNS cannot be re-asked between the check and the connection. Redirects are
//! not followed and proxies from the environment are not used.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use portcullis_ipc::service::{Failure, FetchMethod, FetchRequest, FetchResponse, MAX_HEADERS};
use portcullis_policy::Limits;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Which certificate authorities the broker's HTTPS fetches trust.
#[derive(Debug, Clone, Default)]
pub enum TlsRoots {
    /// Mozilla's root certificates, built in (webpki-roots): the public web.
    #[default]
    Mozilla,
    /// Exactly these root certificates (DER), and no others: a private PKI, or a test's own CA.
    Only(Vec<Vec<u8>>),
}

impl TlsRoots {
    /// The form ureq takes.
    pub(crate) fn to_ureq(&self) -> ureq::tls::RootCerts {
        match self {
            TlsRoots::Mozilla => ureq::tls::RootCerts::WebPki,
            TlsRoots::Only(ders) => ureq::tls::RootCerts::new_with_certs(
                &ders
                    .iter()
                    .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
                    .collect::<Vec<_>>(),
            ),
        }
    }
}

/// Longest header value passed back to a child.
const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
/// Room left in a channel message beside the body.
const ENVELOPE_BYTES: u64 = 256 * 1024;

/// A resolver that answers with the addresses the broker already checked.
#[derive(Debug)]
struct Checked(Vec<SocketAddr>);

impl Resolver for Checked {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        for addr in self.0.iter().take(16) {
            out.push(*addr);
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

/// Performs `request` against `addrs` (already checked), cutting the body at the size cap and
/// the whole exchange at the time cap. `max_message` is the channel's message cap.
pub(crate) fn fetch(
    request: &FetchRequest,
    addrs: Vec<SocketAddr>,
    limits: &Limits,
    max_message: usize,
    roots: &ureq::tls::RootCerts,
) -> Result<FetchResponse, Failure> {
    let channel_room = u64::try_from(max_message)
        .unwrap_or(u64::MAX)
        .saturating_sub(ENVELOPE_BYTES);
    let cap = limits.fetch_bytes.min(channel_room);
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(limits.fetch_timeout_ms.max(1))))
        .max_redirects(0)
        .max_redirects_will_error(false)
        .http_status_as_error(false)
        .proxy(None)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(roots.clone())
                .build(),
        )
        .build();
    let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), Checked(addrs));
    let sent = match request.method {
        FetchMethod::Get => agent.get(&request.url).call(),
        FetchMethod::Post => {
            let mut post = agent.post(&request.url);
            if let Some(ct) = &request.content_type {
                post = post.header("content-type", ct);
            }
            post.send(&request.body[..])
        }
    };
    let response = sent.map_err(|e| failure(&e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .take(MAX_HEADERS)
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            (value.len() <= MAX_HEADER_VALUE_BYTES)
                .then(|| (name.as_str().to_owned(), value.to_owned()))
        })
        .collect();
    let mut reader = response
        .into_body()
        .into_reader()
        .take(cap.saturating_add(1));
    let mut body = Vec::new();
    // A read error after some bytes (the time cap, or the server hanging up) cuts the body.
    let cut_short = reader.read_to_end(&mut body).is_err();
    let over = u64::try_from(body.len()).unwrap_or(u64::MAX) > cap;
    body.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
    Ok(FetchResponse {
        status,
        headers,
        body,
        truncated: cut_short || over,
    })
}

fn failure(e: &ureq::Error) -> Failure {
    match e {
        ureq::Error::Timeout(_) => Failure::TimedOut,
        ureq::Error::HostNotFound => Failure::NameNotResolved,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Failure::ConnectionRefused
        }
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => Failure::Tls,
        // A certificate rustls refused surfaces from the transport as an I/O error.
        ureq::Error::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>()) =>
        {
            Failure::Tls
        }
        _ => Failure::Other,
    }
}
