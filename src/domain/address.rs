//! Email addresses from directory attributes: `mail`-like values and `proxyAddresses`
//! (`SMTP:` primary, `smtp:` secondary; X500, SIP and other types ignored).

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
    Some(value.to_lowercase())
}

/// A proxyAddresses value: `Some((is_primary, address))` for SMTP values, `None` for other types.
pub fn parse_proxy_address(raw: &str) -> Option<(bool, String)> {
    let (kind, rest) = raw.split_once(':')?;
    match kind {
        "SMTP" => normalize_address(rest).map(|a| (true, a)),
        k if k.eq_ignore_ascii_case("smtp") => normalize_address(rest).map(|a| (false, a)),
        _ => None,
    }
}

/// Addresses of one object gathered in attribute order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddressSet {
    primary: Option<String>,
    all: Vec<String>,
}

impl AddressSet {
    /// Adds the values of one attribute. `proxy` selects proxyAddresses parsing.
    pub fn add_values<'a>(&mut self, proxy: bool, values: impl IntoIterator<Item = &'a str>) {
        for raw in values {
            let parsed = if proxy { parse_proxy_address(raw) } else { normalize_address(raw).map(|a| (false, a)) };
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
