//! The CLDAP "netlogon ping" that Windows' DC locator and SSSD send to a domain controller to
//! learn which AD site the client is in (MS-ADTS 6.3.3): the request's bytes and the parser of
//! the answer's `Netlogon` attribute (NETLOGON_SAM_LOGON_RESPONSE_EX, MS-ADTS 6.3.1.9). Pure:
//! the UDP exchange lives in `directory::cldap`.

use super::ber::{octets, tlv};

/// NETLOGON_NT_VERSION_5 | NETLOGON_NT_VERSION_5EX: ask for the _EX response, which names sites.
const NT_VERSION: [u8; 4] = [0x06, 0, 0, 0];
const LOGON_SAM_LOGON_RESPONSE_EX: u16 = 23;
const LOGON_SAM_USER_UNKNOWN_EX: u16 = 25;
/// A name is at most 255 bytes; more jumps than labels means a pointer loop.
const MAX_NAME_STEPS: usize = 128;

/// What a DC says of itself and of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetlogonResponse {
    pub dns_domain: String,
    pub dc_host: String,
    pub dc_site: String,
    /// Empty when no subnet of the directory contains the client's address.
    pub client_site: String,
}

/// The LDAPMessage of a netlogon ping for `domain`: a base search of the RootDSE with the filter
/// `(&(DnsDomain=<domain>)(NtVer=\06\00\00\00))` for the attribute `Netlogon`.
pub fn ping_request(message_id: u8, domain: &str) -> Vec<u8> {
    let equality = |attr: &str, value: &[u8]| tlv(0xa3, &[octets(attr.as_bytes()), octets(value)].concat());
    let filter = tlv(0xa0, &[equality("DnsDomain", domain.as_bytes()), equality("NtVer", &NT_VERSION)].concat());
    let search = tlv(
        0x63,
        &[
            octets(b""),
            tlv(0x0a, &[0]), // scope: base
            tlv(0x0a, &[0]), // derefAliases: never
            tlv(0x02, &[0]), // sizeLimit
            tlv(0x02, &[0]), // timeLimit
            tlv(0x01, &[0]), // typesOnly: false
            filter,
            tlv(0x30, &octets(b"Netlogon")),
        ]
        .concat(),
    );
    tlv(0x30, &[tlv(0x02, &[message_id & 0x7f]), search].concat())
}

/// Parses a NETLOGON_SAM_LOGON_RESPONSE_EX; `None` for another opcode or malformed bytes.
pub fn parse_response(bytes: &[u8]) -> Option<NetlogonResponse> {
    let opcode = u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?]);
    if opcode != LOGON_SAM_LOGON_RESPONSE_EX && opcode != LOGON_SAM_USER_UNKNOWN_EX {
        return None;
    }
    // Opcode, Sbz (2), Flags (4), DomainGuid (16).
    let mut at = 24;
    let mut next = || {
        let (name, end) = read_name(bytes, at)?;
        at = end;
        Some(name)
    };
    let _forest = next()?;
    let dns_domain = next()?;
    let dc_host = next()?;
    let _netbios_domain = next()?;
    let _netbios_computer = next()?;
    let _user = next()?;
    let dc_site = next()?;
    let client_site = next()?;
    Some(NetlogonResponse { dns_domain, dc_host, dc_site, client_site })
}

/// An RFC 1035 name at `start` (labels, or a pointer to an earlier name in `bytes`): the dotted
/// name and where the bytes after it begin.
fn read_name(bytes: &[u8], start: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut at = start;
    let mut end = None;
    for _ in 0..MAX_NAME_STEPS {
        let length = *bytes.get(at)?;
        match length {
            0 => {
                let name = labels.join(".");
                return Some((name, end.unwrap_or(at + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let offset = usize::from(l & 0x3f) << 8 | usize::from(*bytes.get(at + 1)?);
                end.get_or_insert(at + 2);
                at = offset;
            }
            l if l & 0xc0 == 0 => {
                let label = bytes.get(at + 1..at + 1 + usize::from(l))?;
                labels.push(String::from_utf8(label.to_vec()).ok()?);
                at += 1 + usize::from(l);
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response as MS-ADTS lays it out, with compression pointers as Samba writes them.
    fn sample() -> Vec<u8> {
        let mut b = vec![23, 0, 0, 0, 0xfd, 0x03, 0, 0];
        b.extend([0xab; 16]);
        let label = |b: &mut Vec<u8>, l: &str| {
            b.push(l.len() as u8);
            b.extend(l.as_bytes());
        };
        let forest = b.len();
        for l in ["corp", "example", "test"] {
            label(&mut b, l);
        }
        b.push(0);
        b.extend([0xc0, forest as u8]); // the domain: the same name
        label(&mut b, "dc1");
        b.extend([0xc0, forest as u8]); // dc1.corp.example.test
        label(&mut b, "CORP");
        b.push(0);
        label(&mut b, "DC1");
        b.push(0);
        b.push(0); // no user name
        let site = b.len();
        label(&mut b, "Default-First-Site-Name");
        b.push(0);
        b.extend([0xc0, site as u8]); // the client is in the DC's site
        b.extend([5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        b
    }

    #[test]
    fn a_samba_style_response_names_the_sites() {
        let r = parse_response(&sample()).expect("parsed");
        assert_eq!(r.dns_domain, "corp.example.test");
        assert_eq!(r.dc_host, "dc1.corp.example.test");
        assert_eq!(
            (r.dc_site.as_str(), r.client_site.as_str()),
            ("Default-First-Site-Name", "Default-First-Site-Name")
        );
    }

    #[test]
    fn malformed_responses_are_refused_without_panicking() {
        let good = sample();
        for cut in 0..good.len() - 8 {
            assert_eq!(parse_response(&good[..cut]), None, "cut at {cut}");
        }
        let mut looped = good.clone();
        looped[24] = 0xc0;
        looped[25] = 24; // a pointer to itself
        assert_eq!(parse_response(&looped), None);
        let mut other = good;
        other[0] = 19; // LOGON_SAM_LOGON_RESPONSE (no sites)
        assert_eq!(parse_response(&other), None);
    }

    #[test]
    fn the_request_is_the_ber_a_dc_expects() {
        let r = ping_request(1, "corp.example.test");
        assert_eq!(&r[..5], &[0x30, r.len() as u8 - 2, 0x02, 0x01, 0x01]);
        assert_eq!(r[5], 0x63, "SearchRequest");
        let text = String::from_utf8_lossy(&r);
        assert!(text.contains("DnsDomain") && text.contains("corp.example.test") && text.contains("Netlogon"));
        assert!(r.windows(6).any(|w| w == [0x04, 0x04, 0x06, 0, 0, 0]), "NtVer 6");
        let long = ping_request(2, &"x".repeat(300));
        assert_eq!(long[1], 0x82, "long lengths use the long form");
    }
}
