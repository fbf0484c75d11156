use super::*;

fn octets(bytes: &[u8]) -> StructureTag {
    StructureTag { class: TagClass::Universal, id: 4, payload: PL::P(bytes.to_vec()) }
}

fn list(id: u64, tags: Vec<StructureTag>) -> StructureTag {
    StructureTag { class: TagClass::Universal, id, payload: PL::C(tags) }
}

fn entry_tag(dn: &[u8], attributes: Vec<(&[u8], Vec<&[u8]>)>) -> StructureTag {
    let attributes = attributes
        .into_iter()
        .map(|(name, values)| list(16, vec![octets(name), list(17, values.into_iter().map(octets).collect())]))
        .collect();
    StructureTag { class: TagClass::Application, id: 4, payload: PL::C(vec![octets(dn), list(16, attributes)]) }
}

#[test]
fn entries_are_taken_apart_with_text_and_binary_values() {
    let guid: &[u8] = &[0xff, 0xfe, 0, 1];
    let tag = entry_tag(
        b"CN=Alice,DC=corp",
        vec![
            (b"mail", vec![b"alice@corp.example", b"a@corp.example"]),
            (b"objectGUID", vec![guid]),
            (b"member", vec![]),
            (b"mixed", vec![b"text", guid]),
        ],
    );
    let entry = decode_entry(tag).expect("a well-formed entry");
    assert_eq!(entry.dn, "CN=Alice,DC=corp");
    assert_eq!(entry.values("MAIL"), ["alice@corp.example", "a@corp.example"]);
    let names: Vec<&str> = entry.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["mail", "objectGUID", "member", "mixed"]);
    assert_eq!(entry.attributes[1].binary, [guid.to_vec()]);
    assert!(entry.attributes[2].values.is_empty());
    // One binary value makes the whole attribute binary, in the server's order.
    assert_eq!(entry.attributes[3].binary, [b"text".to_vec(), guid.to_vec()]);
    assert!(entry.attributes[3].values.is_empty());
}

#[test]
fn paged_result_cookies_are_read_and_malformed_controls_refused() {
    // SEQUENCE { INTEGER 0, OCTET STRING "ab" } and the same with an empty cookie.
    assert_eq!(paged_cookie(Some(&[0x30, 0x07, 0x02, 0x01, 0x00, 0x04, 0x02, b'a', b'b'])), Some(b"ab".to_vec()));
    assert_eq!(paged_cookie(Some(&[0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00])), Some(Vec::new()));
    for (what, value) in [
        ("no value", None),
        ("empty", Some(&[][..])),
        ("cut short", Some(&[0x30, 0x07, 0x02, 0x01][..])),
        ("no cookie", Some(&[0x30, 0x03, 0x02, 0x01, 0x00][..])),
        ("size not an integer", Some(&[0x30, 0x06, 0x04, 0x00, 0x04, 0x02, b'a', b'b'][..])),
        ("not a sequence", Some(&[0x04, 0x02, b'a', b'b'][..])),
    ] {
        assert_eq!(paged_cookie(value), None, "{what}");
    }
}

#[test]
fn malformed_entries_are_refused_not_panicked_on() {
    let good = || entry_tag(b"cn=a", vec![(b"mail", vec![b"a@b"])]);
    let mut wrong_op = good();
    wrong_op.id = 5;
    let mut primitive_top = good();
    primitive_top.payload = PL::P(b"cn=a".to_vec());
    let PL::C(mut parts) = good().payload else { unreachable!() };
    parts.truncate(1);
    let no_attributes = StructureTag { class: TagClass::Application, id: 4, payload: PL::C(parts) };
    let attribute_not_a_pair = StructureTag {
        class: TagClass::Application,
        id: 4,
        payload: PL::C(vec![octets(b"cn=a"), list(16, vec![octets(b"mail")])]),
    };
    let values_not_a_set = StructureTag {
        class: TagClass::Application,
        id: 4,
        payload: PL::C(vec![octets(b"cn=a"), list(16, vec![list(16, vec![octets(b"mail"), octets(b"x")])])]),
    };
    let dn_not_utf8 = entry_tag(&[0xff, 0xfe], vec![]);
    let name_not_utf8 = entry_tag(b"cn=a", vec![(&[0xc3, 0x28], vec![b"x"])]);
    for (what, tag) in [
        ("another operation", wrong_op),
        ("a primitive entry", primitive_top),
        ("no attribute list", no_attributes),
        ("an attribute without values", attribute_not_a_pair),
        ("values that are not a set", values_not_a_set),
        ("a DN that is not UTF-8", dn_not_utf8),
        ("an attribute name that is not UTF-8", name_not_utf8),
    ] {
        assert_eq!(decode_entry(tag), None, "{what}");
    }
}

#[test]
fn result_texts_name_the_code() {
    assert_eq!(
        result_text(49, "80090308: LdapErr: DSID-0C09042A"),
        "invalidCredentials: 80090308: LdapErr: DSID-0C09042A"
    );
    assert_eq!(result_text(51, ""), "busy");
    assert_eq!(result_text(80, " "), "result code 80");
}

#[test]
fn endpoint_display_shows_name_and_address() {
    let e = ServerEndpoint { host: "dc1.corp.example.test".into(), addr: "127.0.0.1:389".parse().expect("addr") };
    assert_eq!(e.to_string(), "dc1.corp.example.test:389 (127.0.0.1)");
    let ip = ServerEndpoint { host: "127.0.0.1".into(), addr: "127.0.0.1:636".parse().expect("addr") };
    assert_eq!(ip.to_string(), "127.0.0.1:636");
}
