//! Every stable reason ldapsync reports: condition reasons, row reasons, CLI errors, log fields and
//! metric labels all name one of these, so the set is bounded and spelt once.

macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $name:ident),+ $(,)?) => {
        /// A stable, CamelCase reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[doc = $doc])* $name),+
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &[Reason] = &[$(Reason::$name),+];

            /// The reason as written in conditions, rows and labels.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name)),+
                }
            }
        }
    };
}

reasons! {
    // The spec and what it references.
    /// `spec.domain` is not a DNS name.
    InvalidDomain,
    InvalidSearchBase,
    /// A field of the spec is not usable (the message names it).
    InvalidSpec,
    InvalidTls,
    InvalidFilter,
    InvalidCA,
    SecretNotFound,
    SecretKeyMissing,
    SecretInvalid,
    KeytabInvalid,
    ConfigMapNotFound,
    ScheduleNotFound,
    ScheduleInvalid,
    /// An older connection owns the same domain and search base.
    SearchBaseConflict,
    NestedSearchBase,
    Accepted,
    /// The agent may not read a referenced object.
    ForbiddenByRbac,
    KubernetesApiUnavailable,
    // Reaching and reading the directory.
    DnsLookupFailed,
    TlsConfigInvalid,
    ConnectionFailed,
    Timeout,
    TlsHandshakeFailed,
    StrongerAuthRequired,
    /// A bind refused for another cause than the credentials (e.g. an unsupported method).
    AuthenticationFailed,
    /// Wrong password or keytab key, or no such account (AD `data 52e`, `525`; LDAP result 49).
    InvalidCredentials,
    /// AD `data 775`.
    AccountLockedOut,
    /// AD `data 533`.
    AccountDisabled,
    /// AD `data 532`; a KDC's "password has expired".
    PasswordExpired,
    /// AD `data 701`.
    AccountExpired,
    /// AD `data 773`: the password must be changed before the account may log on.
    PasswordMustChange,
    /// AD `data 530`, `531`: not at this time or from this workstation.
    LogonNotPermitted,
    /// A KDC's KDC_ERR_CLIENT_REVOKED: locked out, disabled or expired.
    CredentialsRevoked,
    KerberosFailed,
    SearchBaseNotFound,
    SizeLimitExceeded,
    ServerBusy,
    ServerUnavailable,
    UnwillingToPerform,
    SearchFailed,
    ConnectionLost,
    MalformedResponse,
    OperationFailed,
    NoDomainControllerReachable,
    InvalidDirectoryData,
    // The cache.
    StoreFailed,
    NotASnapshot,
    UnsupportedSnapshotVersion,
    UnsupportedSnapshotFlags,
    SnapshotTruncated,
    SnapshotChecksumMismatch,
    SnapshotCorrupt,
    /// The deletion-safety guard holds the sync.
    DeletionThresholdExceeded,
    /// An approval names content the pod does not hold.
    ApprovalNotHeld,
    // What the controller says of the rows.
    NoGatewayPods,
    DeletionHeld,
    Synced,
    SyncFailed,
    Stale,
    Progressing,
    Fresh,
    DuplicatesFound,
    NoDuplicates,
    /// A deleted connection's agents did not report their caches purged in time.
    CleanupTimedOut,
    /// A CLI command could not write its answer.
    OutputFailed,
}

/// An error and each of its sources, for a log line or a CLI message that keeps the whole
/// context; a source whose text the message already holds is not repeated.
pub fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> Self {
        reason.as_str().to_owned()
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Reason> for &str {
    fn eq(&self, other: &Reason) -> bool {
        *self == other.as_str()
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_camel_case_and_spelt_once() {
        let mut seen = std::collections::BTreeSet::new();
        for reason in Reason::ALL {
            let s = reason.as_str();
            assert!(s.starts_with(|c: char| c.is_ascii_uppercase()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(seen.insert(s), "{s} twice");
        }
    }

    #[test]
    fn an_error_names_its_sources_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read the keytab")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("permission denied"));
        assert_eq!(with_sources(&e), "cannot read the keytab: permission denied");
        #[derive(Debug, thiserror::Error)]
        #[error("bind failed: {0}")]
        struct Says(#[source] std::io::Error);
        assert_eq!(with_sources(&Says(std::io::Error::other("52e"))), "bind failed: 52e");
    }

    #[test]
    fn compares_with_the_strings_written_in_conditions() {
        assert_eq!(Reason::SecretNotFound, "SecretNotFound");
        assert_eq!(String::from(Reason::InvalidCA), "InvalidCA");
        assert_eq!(serde_json::to_string(&Reason::Timeout).ok().as_deref(), Some("\"Timeout\""));
    }
}
