//! Email addresses from directory attributes: `mail`-like values and typed values such as
//! `proxyAddresses` and `targetAddress` (`SMTP:` primary, `smtp:` secondary; X500, SIP and other
//! types ignored). An address's domain is kept in its ASCII (A-label) form, so that a domain
//! written in Unicode in the directory and one asked for in A-labels are the same key.

use std::borrow::Cow;

/// Longest address accepted (RFC 5321: 64 local + 1 + 255 domain).
const MAX_ADDRESS_LEN: usize = 320;

/// The normalised (trimmed, lowercased) form of an address, or `None` when it is not one.
pub fn normalize_address(raw: &str) -> Option<String> {
    let value = raw.trim();
    if value.is_empty() || value.len() > MAX_ADDRESS_LEN || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = value.rsplit_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || domain.starts_with('.')
        || domain.ends_with('.')
        || !domain.contains('.') && domain != "localhost"
    {
        return None;
    }
    let domain = ascii_domain(domain)?;
    Some(format!("{}@{domain}", local.to_lowercase()))
}

/// The form an address or a domain is looked up in: lowercase, the domain in A-labels. What is not
/// a valid domain is only lowercased (it matches nothing the cache holds).
pub fn lookup_key(raw: &str) -> Cow<'_, str> {
    let raw = raw.trim();
    if raw.is_ascii() {
        return if raw.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(raw.to_ascii_lowercase())
        } else {
            Cow::Borrowed(raw)
        };
    }
    let canonical = match raw.rsplit_once('@') {
        Some((local, domain)) => ascii_domain(domain).map(|d| format!("{}@{d}", local.to_lowercase())),
        None => ascii_domain(raw),
    };
    Cow::Owned(canonical.unwrap_or_else(|| raw.to_lowercase()))
}

/// The domain in lowercase A-labels (UTS #46 processing, which maps to NFC); `None` when it is not
/// a valid internationalised domain name.
fn ascii_domain(domain: &str) -> Option<String> {
    if domain.is_ascii() && !domain.split('.').any(|label| label.starts_with("xn--")) {
        return Some(domain.to_ascii_lowercase());
    }
    idna::domain_to_ascii(domain).ok().filter(|d| !d.is_empty())
}

/// A typed value (`TYPE:address`, as in proxyAddresses): `Some((is_primary, address))` for SMTP
/// values, `None` for other types and for values without a type.
pub fn parse_proxy_address(raw: &str) -> Option<(bool, String)> {
    let (kind, rest) = raw.split_once(':')?;
    match kind {
        "SMTP" => normalize_address(rest).map(|a| (true, a)),
        k if k.eq_ignore_ascii_case("smtp") => normalize_address(rest).map(|a| (false, a)),
        _ => None,
    }
}

/// Whether `raw` starts with an address type (`SMTP:`, `X500:`, `sip:`): a colon before any `@`.
/// An unquoted local part cannot hold a colon (RFC 5321), so a plain address never does.
fn is_typed(raw: &str) -> bool {
    raw.split_once(':').is_some_and(|(kind, _)| {
        !kind.is_empty() && kind.len() <= 16 && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// Addresses of one object gathered in attribute order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddressSet {
    primary: Option<String>,
    all: Vec<String>,
}

impl AddressSet {
    /// Adds the values of one attribute. Typed values (`SMTP:`, `smtp:`) are parsed in every
    /// attribute; only `proxyAddresses` (`proxy`) marks the primary address with `SMTP:`.
    pub fn add_values<'a>(&mut self, proxy: bool, values: impl IntoIterator<Item = &'a str>) {
        for raw in values {
            let parsed = if is_typed(raw.trim_start()) {
                parse_proxy_address(raw.trim_start()).map(|(primary, a)| (proxy && primary, a))
            } else {
                normalize_address(raw).map(|a| (false, a))
            };
            if let Some((primary, address)) = parsed {
                if primary && self.primary.is_none() {
                    self.primary = Some(address.clone());
                }
                self.all.push(address);
            }
        }
    }

    /// `(primary, sorted distinct addresses)`. Without an `SMTP:` value the first address found is primary.
    pub fn finish(mut self) -> (Option<String>, Vec<String>) {
        let primary = self.primary.or_else(|| self.all.first().cloned());
        self.all.sort_unstable();
        self.all.dedup();
        (primary, self.all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses_by_type() {
        let cases = [
            ("SMTP:Alice@Corp.Example.com", Some((true, "alice@corp.example.com"))),
            ("smtp:a.l@alias.example.com", Some((false, "a.l@alias.example.com"))),
            ("Smtp:x@y.example", Some((false, "x@y.example"))),
            ("X500:/o=Corp/ou=Exchange/cn=Recipients/cn=alice", None),
            ("SIP:alice@corp.example.com", None),
            ("x400:c=US;a= ;p=Corp;o=Exchange;s=Liddell;g=Alice;", None),
            ("SMTP:", None),
            ("SMTP:not an address", None),
            ("no-colon", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_proxy_address(raw), want.map(|(p, a)| (p, a.to_owned())), "{raw}");
        }
    }

    #[test]
    fn plain_addresses() {
        assert_eq!(normalize_address("  Bob@Example.COM "), Some("bob@example.com".into()));
        for bad in [
            "",
            "bob",
            "@example.com",
            "bob@",
            "bob@example",
            "bob@.example.com",
            "a b@example.com",
            "bob@example.com.",
        ] {
            assert_eq!(normalize_address(bad), None, "{bad:?}");
        }
        assert_eq!(normalize_address(&format!("{}@example.com", "a".repeat(400))), None);
    }

    #[test]
    fn typed_values_are_parsed_in_every_attribute() {
        // targetAddress of a contact, mail holding a SIP URI: only SMTP values are addresses, and
        // only proxyAddresses marks the primary one.
        let mut s = AddressSet::default();
        s.add_values(false, ["SMTP:Partner@External.Example", "SIP:partner@external.example", "X500:/o=x"]);
        assert_eq!(s.finish(), (Some("partner@external.example".into()), vec!["partner@external.example".into()]));
        let mut s = AddressSet::default();
        s.add_values(false, ["first@corp.example"]);
        s.add_values(false, ["SMTP:second@corp.example"]);
        assert_eq!(
            s.finish().0.as_deref(),
            Some("first@corp.example"),
            "SMTP: outside proxyAddresses is no primary mark"
        );
    }

    #[test]
    fn domains_are_kept_in_a_labels_from_either_form() {
        assert_eq!(normalize_address("Max@Bücher.Example").as_deref(), Some("max@xn--bcher-kva.example"));
        assert_eq!(normalize_address("max@XN--BCHER-KVA.example").as_deref(), Some("max@xn--bcher-kva.example"));
        // NFD (u + combining diaeresis) and NFC spellings are one domain.
        assert_eq!(normalize_address("max@bu\u{308}cher.example").as_deref(), Some("max@xn--bcher-kva.example"));
        assert_eq!(normalize_address("max@xn--.example"), None, "an invalid A-label");
    }

    #[test]
    fn lookup_keys_are_lowercase_with_a_label_domains() {
        assert_eq!(lookup_key(" Alice@Corp.Test "), "alice@corp.test");
        assert!(matches!(lookup_key("alice@corp.test"), Cow::Borrowed(_)), "the common case allocates nothing");
        assert_eq!(lookup_key("Jörg@Bücher.test"), "jörg@xn--bcher-kva.test");
        assert_eq!(lookup_key("bücher.test"), "xn--bcher-kva.test");
        assert_eq!(lookup_key("Jörg@xn--bcher-kva.test"), "jörg@xn--bcher-kva.test");
    }

    #[test]
    fn primary_prefers_smtp_then_first_and_set_is_sorted_distinct() {
        let mut s = AddressSet::default();
        s.add_values(false, ["alice@corp.example.com"]);
        s.add_values(true, ["smtp:z@alias.example.com", "SMTP:Alice@Corp.Example.com", "X500:/o=x"]);
        assert_eq!(
            s.finish(),
            (
                Some("alice@corp.example.com".into()),
                vec!["alice@corp.example.com".into(), "z@alias.example.com".into()]
            )
        );
        let mut only_mail = AddressSet::default();
        only_mail.add_values(false, ["b@example.com", "a@example.com"]);
        assert_eq!(only_mail.finish().0.as_deref(), Some("b@example.com"));
    }
}
