//! One search base per domain: among connections of a namespace that claim the same (domain,
//! normalised base), the oldest (creation time, then name) wins. A base nested in another base of
//! the same domain is allowed, with a warning.
//!
//! The verdict depends only on the claims, so every controller replica and every restart reaches
//! the same one.

use crate::domain::dn::Dn;

/// One connection's claim on a search base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    /// Normalised domain (see `validation::normalize_domain`).
    pub domain: String,
    pub base: Dn,
    /// Creation time as Unix seconds.
    pub created: i64,
}

impl Claim {
    fn precedes(&self, other: &Claim) -> bool {
        (self.created, &self.name) < (other.created, &other.name)
    }
}

/// The outcome for one claim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The connection that owns this base, when it is not this one.
    pub conflict_with: Option<String>,
    /// Connections whose base contains this one, or lies inside it (sorted names).
    pub overlaps: Vec<String>,
}

/// Judges `me` against the claims of its namespace (`me` itself may be among them).
pub fn judge(me: &Claim, claims: &[Claim]) -> Verdict {
    let same_domain = || claims.iter().filter(|c| c.domain == me.domain && c.name != me.name);
    let winner = same_domain()
        .filter(|c| c.base == me.base && c.precedes(me))
        .min_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    if let Some(w) = winner {
        return Verdict { conflict_with: Some(w.name.clone()), overlaps: Vec::new() };
    }
    // Only bases that won their own contest count as overlapping.
    let is_winner = |c: &Claim| {
        !same_domain().chain(std::iter::once(me)).any(|o| o.name != c.name && o.base == c.base && o.precedes(c))
    };
    let mut overlaps: Vec<String> = same_domain()
        .filter(|c| c.base != me.base && (c.base.is_within(&me.base) || me.base.is_within(&c.base)))
        .filter(|c| is_winner(c))
        .map(|c| c.name.clone())
        .collect();
    overlaps.sort();
    Verdict { conflict_with: None, overlaps }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str, domain: &str, base: &str, created: i64) -> Claim {
        Claim { name: name.into(), domain: domain.into(), base: Dn::parse(base).expect("dn"), created }
    }

    #[test]
    fn the_oldest_claim_wins_whatever_the_order() {
        let a = claim("a", "corp.test", "OU=Staff,DC=corp,DC=test", 100);
        let b = claim("b", "corp.test", "ou=staff, dc=CORP,dc=test", 200);
        for claims in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
            assert_eq!(judge(&a, &claims), Verdict::default());
            assert_eq!(judge(&b, &claims).conflict_with.as_deref(), Some("a"));
        }
        // The winner gone: the other one is accepted.
        assert_eq!(judge(&b, std::slice::from_ref(&b)), Verdict::default());
    }

    #[test]
    fn ties_on_creation_time_go_to_the_smaller_name() {
        let a = claim("alpha", "corp.test", "DC=corp,DC=test", 100);
        let b = claim("beta", "corp.test", "DC=corp,DC=test", 100);
        let c = claim("gamma", "corp.test", "DC=corp,DC=test", 50);
        let all = [a.clone(), b.clone(), c.clone()];
        assert_eq!(judge(&a, &all).conflict_with.as_deref(), Some("gamma"));
        assert_eq!(judge(&b, &all).conflict_with.as_deref(), Some("gamma"));
        assert_eq!(judge(&c, &all), Verdict::default());
        assert_eq!(judge(&b, &[a.clone(), b.clone()]).conflict_with.as_deref(), Some("alpha"));
    }

    #[test]
    fn escapes_and_multi_valued_rdns_compare_normalised() {
        let a = claim("a", "corp.test", "OU=R\\26D+CN=x,DC=corp,DC=test", 1);
        let b = claim("b", "corp.test", "cn=X+ou=r&d,dc=corp,dc=test", 2);
        assert_eq!(judge(&b, &[a, b.clone()]).conflict_with.as_deref(), Some("a"));
    }

    #[test]
    fn other_domains_never_conflict() {
        let a = claim("a", "corp.test", "DC=corp,DC=test", 1);
        let b = claim("b", "other.test", "DC=corp,DC=test", 2);
        assert_eq!(judge(&b, &[a, b.clone()]), Verdict::default());
    }

    #[test]
    fn nested_bases_are_accepted_with_an_overlap_on_both_sides() {
        let top = claim("top", "corp.test", "DC=corp,DC=test", 1);
        let staff = claim("staff", "corp.test", "OU=Staff,DC=corp,DC=test", 2);
        let sales = claim("sales", "corp.test", "OU=Sales,DC=corp,DC=test", 3);
        let loser = claim("loser", "corp.test", "OU=Staff,DC=corp,DC=test", 4);
        let all = [top.clone(), staff.clone(), sales.clone(), loser.clone()];
        assert_eq!(judge(&top, &all).overlaps, ["sales", "staff"]);
        assert_eq!(judge(&staff, &all), Verdict { conflict_with: None, overlaps: vec!["top".into()] });
        assert_eq!(judge(&sales, &all).overlaps, ["top"]);
        assert_eq!(judge(&loser, &all).conflict_with.as_deref(), Some("staff"));
    }
}
