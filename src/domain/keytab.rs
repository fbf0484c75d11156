//! MIT keytab parsing (file format 0x0502/0x0501): which principals a keytab holds.
//!
//! A connection's keytab must hold exactly one principal; the check happens before any Kerberos call,
//! so a wrong Secret gets a condition that names what was found instead of an opaque GSSAPI error.

use std::collections::BTreeSet;

/// Why a keytab was refused. The messages name what was found, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeytabError {
    #[error("the keytab is empty")]
    Empty,
    #[error("not a keytab: the file starts with {0:#06x}, expected 0x0502 or 0x0501")]
    BadMagic(u16),
    #[error("the keytab is truncated or malformed at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("the keytab holds no keys")]
    NoEntries,
    #[error("the keytab must hold exactly one principal, found {}: {}", .0.len(), .0.join(", "))]
    SeveralPrincipals(Vec<String>),
    #[error("the keytab holds {found}, not the requested principal {requested}")]
    PrincipalNotInKeytab { requested: String, found: String },
}

/// The single principal of a keytab and how many keys it has for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeytabSummary {
    /// `name[/instance]@REALM`.
    pub principal: String,
    /// Number of key entries (one per encryption type and version).
    pub keys: usize,
}

/// Lists the distinct principals of a keytab, in file order of first appearance.
pub fn keytab_principals(bytes: &[u8]) -> Result<Vec<(String, usize)>, KeytabError> {
    let mut r = Reader { bytes, pos: 0 };
    if bytes.is_empty() {
        return Err(KeytabError::Empty);
    }
    let magic = r.u16("file format version")?;
    let realm_counted = match magic {
        0x0502 => false,
        0x0501 => true,
        other => return Err(KeytabError::BadMagic(other)),
    };
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut names = BTreeSet::new();
    while r.pos < bytes.len() {
        let len = r.i32("record length")?;
        if len == 0 {
            break;
        }
        let size = len.unsigned_abs() as usize;
        let start = r.pos;
        let end = start
            .checked_add(size)
            .filter(|e| *e <= bytes.len())
            .ok_or(KeytabError::Malformed { offset: start, what: "record longer than the file" })?;
        if len < 0 {
            r.pos = end; // a hole left by a deleted entry
            continue;
        }
        let mut rec = Reader { bytes: &bytes[..end], pos: start };
        let mut components = rec.u16("component count")? as usize;
        if realm_counted {
            components = components
                .checked_sub(1)
                .ok_or(KeytabError::Malformed { offset: start, what: "component count of zero" })?;
        }
        let realm = rec.counted_string("realm")?;
        let mut parts = Vec::with_capacity(components);
        for _ in 0..components {
            parts.push(rec.counted_string("principal component")?);
        }
        if parts.is_empty() {
            return Err(KeytabError::Malformed { offset: start, what: "principal without a name" });
        }
        let principal = format!("{}@{}", parts.join("/"), realm);
        if names.insert(principal.clone()) {
            seen.push((principal, 1));
        } else if let Some(entry) = seen.iter_mut().find(|(p, _)| *p == principal) {
            entry.1 += 1;
        }
        r.pos = end;
    }
    Ok(seen)
}

/// Checks that a keytab holds exactly one principal (and that it is `requested`, when given).
pub fn single_principal(bytes: &[u8], requested: Option<&str>) -> Result<KeytabSummary, KeytabError> {
    let principals = keytab_principals(bytes)?;
    let (principal, keys) = match principals.as_slice() {
        [] => return Err(KeytabError::NoEntries),
        [(p, k)] => (p.clone(), *k),
        many => {
            return Err(KeytabError::SeveralPrincipals(many.iter().map(|(p, _)| p.clone()).collect()));
        }
    };
    if let Some(requested) = requested.filter(|r| !principal_matches(&principal, r)) {
        return Err(KeytabError::PrincipalNotInKeytab { requested: requested.to_owned(), found: principal });
    }
    Ok(KeytabSummary { principal, keys })
}

/// Names compare case-sensitively (Kerberos does); a requested name without a realm matches any realm.
fn principal_matches(found: &str, requested: &str) -> bool {
    if requested.contains('@') {
        found == requested
    } else {
        found.rsplit_once('@').is_some_and(|(name, _)| name == requested)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], KeytabError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or(KeytabError::Malformed { offset: self.pos, what })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, KeytabError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, KeytabError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn counted_string(&mut self, what: &'static str) -> Result<String, KeytabError> {
        let len = self.u16(what)? as usize;
        let at = self.pos;
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| KeytabError::Malformed { offset: at, what })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a 0x0502 keytab entry the way MIT's ktutil writes it.
    pub(crate) fn entry(principal: &str, enctype: u16, key: &[u8]) -> Vec<u8> {
        let (name, realm) = principal.split_once('@').expect("test principal has a realm");
        let parts: Vec<&str> = name.split('/').collect();
        let mut rec = Vec::new();
        rec.extend((parts.len() as u16).to_be_bytes());
        rec.extend((realm.len() as u16).to_be_bytes());
        rec.extend(realm.as_bytes());
        for p in &parts {
            rec.extend((p.len() as u16).to_be_bytes());
            rec.extend(p.as_bytes());
        }
        rec.extend(1u32.to_be_bytes()); // KRB5_NT_PRINCIPAL
        rec.extend(0u32.to_be_bytes()); // timestamp
        rec.push(1); // kvno
        rec.extend(enctype.to_be_bytes());
        rec.extend((key.len() as u16).to_be_bytes());
        rec.extend(key);
        rec.extend(1u32.to_be_bytes()); // 32-bit kvno
        let mut out = (rec.len() as i32).to_be_bytes().to_vec();
        out.extend(rec);
        out
    }

    pub(crate) fn keytab(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0x05, 0x02];
        for e in entries {
            out.extend(e);
        }
        out
    }

    #[test]
    fn one_principal_with_several_enctypes_is_accepted() {
        let kt = keytab(&[
            entry("svc-sync@CORP.EXAMPLE.TEST", 18, &[7; 32]),
            entry("svc-sync@CORP.EXAMPLE.TEST", 17, &[8; 16]),
            entry("svc-sync@CORP.EXAMPLE.TEST", 23, &[9; 16]),
        ]);
        let s = single_principal(&kt, None).expect("valid keytab");
        assert_eq!(s.principal, "svc-sync@CORP.EXAMPLE.TEST");
        assert_eq!(s.keys, 3);
        assert!(single_principal(&kt, Some("svc-sync")).is_ok());
        assert!(single_principal(&kt, Some("svc-sync@CORP.EXAMPLE.TEST")).is_ok());
    }

    #[test]
    fn bad_keytabs_are_refused_with_what_was_found() {
        let two = keytab(&[
            entry("svc-sync@CORP.EXAMPLE.TEST", 18, &[1; 32]),
            entry("HTTP/web.corp.example.test@CORP.EXAMPLE.TEST", 18, &[2; 32]),
        ]);
        let cases: Vec<(&str, Vec<u8>, Option<&str>, KeytabError)> = vec![
            ("empty", vec![], None, KeytabError::Empty),
            ("pem instead of keytab", b"-----BEGIN".to_vec(), None, KeytabError::BadMagic(0x2d2d)),
            ("header only", vec![5, 2], None, KeytabError::NoEntries),
            (
                "two principals",
                two.clone(),
                None,
                KeytabError::SeveralPrincipals(vec![
                    "svc-sync@CORP.EXAMPLE.TEST".into(),
                    "HTTP/web.corp.example.test@CORP.EXAMPLE.TEST".into(),
                ]),
            ),
            (
                "other principal requested",
                keytab(&[entry("svc-sync@CORP.EXAMPLE.TEST", 18, &[1; 32])]),
                Some("admin@CORP.EXAMPLE.TEST"),
                KeytabError::PrincipalNotInKeytab {
                    requested: "admin@CORP.EXAMPLE.TEST".into(),
                    found: "svc-sync@CORP.EXAMPLE.TEST".into(),
                },
            ),
        ];
        for (name, bytes, requested, want) in cases {
            assert_eq!(single_principal(&bytes, requested), Err(want), "case {name}");
        }
        let msg = single_principal(&two, None).unwrap_err().to_string();
        assert!(msg.contains("found 2") && msg.contains("HTTP/web.corp.example.test"), "{msg}");
    }

    #[test]
    fn truncated_keytabs_never_panic() {
        let kt = keytab(&[entry("svc-sync@CORP.EXAMPLE.TEST", 18, &[1; 32])]);
        for cut in 3..kt.len() {
            let r = keytab_principals(&kt[..cut]);
            assert!(matches!(r, Err(KeytabError::Malformed { .. })), "cut at {cut}: {r:?}");
        }
    }

    #[test]
    fn holes_from_deleted_entries_are_skipped() {
        let mut kt = keytab(&[]);
        kt.extend((-8i32).to_be_bytes());
        kt.extend([0u8; 8]);
        kt.extend(entry("svc@R", 18, &[1; 32]));
        assert_eq!(single_principal(&kt, None).map(|s| s.principal), Ok("svc@R".to_owned()));
    }
}
