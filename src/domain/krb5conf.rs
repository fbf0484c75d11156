//! The krb5.conf ldapsync writes for itself when nobody gave one: each realm's KDC is the DC the
//! sync chose (as SSSD's kdcinfo files do), names are taken as written (no DNS canonicalisation,
//! no reverse lookups: the service principal is `ldap/<the DC's name>`), nothing found by DNS.

use std::collections::BTreeMap;

/// Realm -> KDC addresses (`host:port`), the preferred first.
pub type Kdcs = BTreeMap<String, Vec<String>>;

/// Puts `kdc` first for `realm`; `true` when that changed anything.
pub fn prefer(kdcs: &mut Kdcs, realm: &str, kdc: &str) -> bool {
    let list = kdcs.entry(realm.to_owned()).or_default();
    if list.first().map(String::as_str) == Some(kdc) {
        return false;
    }
    list.retain(|k| k != kdc);
    list.insert(0, kdc.to_owned());
    true
}

/// The realm of a principal (`name@REALM`); `None` without one.
pub fn realm_of(principal: &str) -> Option<&str> {
    principal.rsplit_once('@').map(|(_, realm)| realm).filter(|r| !r.is_empty())
}

/// The file's text.
pub fn render(kdcs: &Kdcs) -> String {
    let mut out = String::from(
        "# Written by ldapsync: each realm's KDC is the domain controller its sync chose.\n\
         [libdefaults]\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n  \
         dns_canonicalize_hostname = false\n  rdns = false\n",
    );
    if let Some(realm) = kdcs.keys().next() {
        out.push_str(&format!("  default_realm = {realm}\n"));
    }
    out.push_str("[realms]\n");
    for (realm, list) in kdcs {
        out.push_str(&format!("  {realm} = {{\n"));
        for kdc in list {
            out.push_str(&format!("    kdc = {kdc}\n"));
        }
        out.push_str("  }\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_dc_is_the_first_kdc_of_its_realm() {
        let mut kdcs = Kdcs::new();
        assert!(prefer(&mut kdcs, "CORP.TEST", "10.0.0.1:88"));
        assert!(!prefer(&mut kdcs, "CORP.TEST", "10.0.0.1:88"), "unchanged: no rewrite");
        assert!(prefer(&mut kdcs, "CORP.TEST", "10.0.0.2:88"));
        assert!(prefer(&mut kdcs, "LAB.TEST", "[fd00::1]:88"));
        assert_eq!(kdcs["CORP.TEST"], ["10.0.0.2:88", "10.0.0.1:88"]);
        let text = render(&kdcs);
        assert!(text.contains("  CORP.TEST = {\n    kdc = 10.0.0.2:88\n    kdc = 10.0.0.1:88\n  }\n"), "{text}");
        assert!(text.contains("rdns = false") && text.contains("dns_canonicalize_hostname = false"));
        assert!(text.contains("default_realm = CORP.TEST"));
    }

    #[test]
    fn realms_come_from_principals() {
        assert_eq!(realm_of("svc-sync@CORP.EXAMPLE.TEST"), Some("CORP.EXAMPLE.TEST"));
        assert_eq!(realm_of("svc-sync"), None);
        assert_eq!(realm_of("svc-sync@"), None);
    }
}
