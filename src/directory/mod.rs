//! Directory I/O: DNS discovery, LDAP connections, TLS and Kerberos.

pub mod cldap;
pub mod delta;
pub mod dns;
// The GSSAPI bindings: the only library code allowed `unsafe`.
#[cfg(feature = "kerberos")]
#[allow(unsafe_code)]
pub mod kerberos;
pub mod ldap;
#[cfg(feature = "kerberos")]
#[allow(unsafe_code)]
pub mod sealed;
pub mod sync;
pub mod tls;

use crate::domain::credentials;
use crate::domain::reason::Reason;
use std::time::Duration;

/// A failed directory action. Network failures, TLS failures and LDAP result codes stay apart;
/// [`DirectoryError::reason`] gives the stable reason used in conditions and metrics.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
    #[error("TLS settings: {0}")]
    TlsConfig(#[from] tls::TlsConfigError),
    #[error("cannot connect to {server}: {source}")]
    ConnectLdap { server: String, source: std::io::Error },
    #[error("connecting to {server} timed out after {after:?}")]
    ConnectTimeout { server: String, after: Duration },
    #[error("TLS with {server} failed: {detail}")]
    TlsHandshake { server: String, detail: String },
    #[error("bind to {server} as {identity} failed: {detail} (LDAP result {code})")]
    BindLdap { server: String, identity: String, code: u32, detail: String },
    #[error("Kerberos bind to {server} failed: {detail}")]
    KerberosBind { server: String, detail: String },
    #[cfg(feature = "kerberos")]
    #[error(transparent)]
    Kerberos(#[from] kerberos::KerberosError),
    #[error("{operation} on {server} timed out after {after:?}")]
    OperationTimeout { server: String, operation: &'static str, after: Duration },
    #[error("search of {base} on {server} failed: {detail} (LDAP result {code})")]
    Search { server: String, base: String, code: u32, detail: String },
    #[error("invalid LDAP filter: {detail}")]
    InvalidFilter { detail: String },
    #[error("the connection to {server} was lost during the {operation} (the server closed it or went away): {detail}")]
    ConnectionLost { server: String, operation: &'static str, detail: String },
    #[error("{server} sent a malformed response: {detail}")]
    MalformedResponse { server: String, detail: String },
    #[error("{operation} on {server} failed: {detail}")]
    Operation { server: String, operation: &'static str, detail: String },
}

impl DirectoryError {
    /// Stable, bounded reason string (condition reasons, metric labels).
    pub fn reason(&self) -> Reason {
        match self {
            Self::Dns(_) => Reason::DnsLookupFailed,
            Self::TlsConfig(_) => Reason::TlsConfigInvalid,
            Self::ConnectLdap { .. } => Reason::ConnectionFailed,
            Self::ConnectTimeout { .. } | Self::OperationTimeout { .. } => Reason::Timeout,
            Self::TlsHandshake { .. } => Reason::TlsHandshakeFailed,
            Self::BindLdap { code, detail, .. } => credentials::bind_refusal(*code, detail),
            Self::KerberosBind { detail, .. } => {
                credentials::kerberos_refusal(detail).unwrap_or(Reason::AuthenticationFailed)
            }
            #[cfg(feature = "kerberos")]
            Self::Kerberos(kerberos::KerberosError::Keytab(_)) => Reason::KeytabInvalid,
            #[cfg(feature = "kerberos")]
            Self::Kerberos(e) => credentials::kerberos_refusal(&e.to_string()).unwrap_or(Reason::KerberosFailed),
            Self::Search { code: 32, .. } => Reason::SearchBaseNotFound,
            Self::Search { code: 4, .. } => Reason::SizeLimitExceeded,
            Self::Search { code: 3, .. } => Reason::Timeout,
            Self::Search { code: 51, .. } => Reason::ServerBusy,
            Self::Search { code: 52, .. } => Reason::ServerUnavailable,
            Self::Search { code: 53, .. } => Reason::UnwillingToPerform,
            Self::Search { .. } => Reason::SearchFailed,
            Self::InvalidFilter { .. } => Reason::InvalidFilter,
            Self::ConnectionLost { .. } => Reason::ConnectionLost,
            Self::MalformedResponse { .. } => Reason::MalformedResponse,
            Self::Operation { .. } => Reason::OperationFailed,
        }
    }
}
