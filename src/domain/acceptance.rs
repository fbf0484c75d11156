//! The controller's decision on a connection: its spec on its own, then the search-base contest
//! among its namespace's connections, then what it references. Pure: everything read comes in.

use crate::api::LdapConnectionSpec;
use crate::domain::conditions::{Acceptance, SEARCH_BASE_CONFLICT};
use crate::domain::dn::Dn;
use crate::domain::search_base::{Claim, judge};
use crate::domain::validation::{References, Rejection, normalize_domain, validate, validate_spec};

/// A connection's claim on its search base, when its domain and base are valid at all.
pub fn claim_of(name: &str, spec: &LdapConnectionSpec, created: i64) -> Option<Claim> {
    let domain = normalize_domain(&spec.domain).ok()?;
    let base = Dn::parse(&spec.search_base).ok()?;
    Some(Claim { name: name.to_owned(), domain, base, created })
}

/// Decides on connection `name` (created at `created`, Unix seconds) given the claims of the
/// other live connections of its namespace and the objects it references.
pub fn decide(
    name: &str,
    created: i64,
    spec: &LdapConnectionSpec,
    peers: &[Claim],
    refs: &impl References,
) -> Acceptance {
    let (domain, base) = match validate_spec(spec) {
        Ok(v) => v,
        Err(r) => return Acceptance::Rejected(r),
    };
    let me = Claim { name: name.to_owned(), domain, base, created };
    let verdict = judge(&me, peers);
    if let Some(winner) = verdict.conflict_with {
        return Acceptance::Rejected(Rejection {
            reason: SEARCH_BASE_CONFLICT,
            field: "spec.searchBase".into(),
            message: format!(
                "domain {} and search base {:?} are already synced by LdapConnection {winner} (the oldest connection keeps them)",
                me.domain, spec.search_base
            ),
        });
    }
    match validate(spec, refs) {
        Ok(accepted) => {
            Acceptance::Accepted { kerberos_principal: accepted.kerberos_principal, overlaps: verdict.overlaps }
        }
        Err(r) => Acceptance::Rejected(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reason::Reason;
    use crate::domain::validation::ReferencedObjects;

    fn spec(base: &str) -> LdapConnectionSpec {
        serde_json::from_value(serde_json::json!({
            "domain": "Corp.Example.Test.",
            "searchBase": base,
            "tls": {"mode": "StartTLS"},
            "auth": {"simple": {"bindDN": "svc@corp.example.test", "passwordSecretRef": {"name": "pw"}}}
        }))
        .expect("spec")
    }

    fn refs(password: &[u8]) -> ReferencedObjects {
        let mut objects = ReferencedObjects::default();
        objects.secrets.insert("pw".into(), [("password".to_owned(), password.to_vec())].into());
        objects
    }

    fn peer(name: &str, base: &str, created: i64) -> Claim {
        claim_of(name, &spec(base), created).expect("claim")
    }

    #[test]
    fn the_oldest_claim_keeps_its_search_base() {
        let peers = [peer("older", "DC=corp,DC=example,DC=test", 10)];
        let got = decide("newer", 20, &spec("dc=Corp, dc=Example, dc=Test"), &peers, &refs(b"pw"));
        let Acceptance::Rejected(r) = got else { panic!("the newer claim must lose: {got:?}") };
        assert_eq!((r.reason, r.field.as_str()), (Reason::SearchBaseConflict, "spec.searchBase"));
        assert!(r.message.contains("older"), "{r}");
        let won = decide(
            "older",
            10,
            &spec("DC=corp,DC=example,DC=test"),
            &[peer("newer", "DC=corp,DC=example,DC=test", 20)],
            &refs(b"pw"),
        );
        assert!(matches!(won, Acceptance::Accepted { .. }), "{won:?}");
    }

    #[test]
    fn a_nested_base_is_accepted_with_its_overlaps() {
        let peers = [peer("all", "DC=corp,DC=example,DC=test", 10)];
        let got = decide("staff", 20, &spec("OU=Staff,DC=corp,DC=example,DC=test"), &peers, &refs(b"pw"));
        assert_eq!(got, Acceptance::Accepted { kerberos_principal: None, overlaps: vec!["all".into()] });
    }

    #[test]
    fn the_spec_is_judged_before_the_contest_and_references_after() {
        let got = decide("bad", 20, &spec("not a dn"), &[], &refs(b"pw"));
        assert!(matches!(&got, Acceptance::Rejected(r) if r.reason == Reason::InvalidSearchBase), "{got:?}");
        let got = decide("blank", 20, &spec("DC=corp,DC=example,DC=test"), &[], &refs(b"\n"));
        assert!(matches!(&got, Acceptance::Rejected(r) if r.reason == Reason::SecretInvalid), "{got:?}");
        let got = decide("missing", 20, &spec("DC=corp,DC=example,DC=test"), &[], &ReferencedObjects::default());
        assert!(matches!(&got, Acceptance::Rejected(r) if r.reason == Reason::SecretNotFound), "{got:?}");
    }
}
