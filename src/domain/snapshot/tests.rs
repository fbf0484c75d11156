use super::*;

pub(crate) fn ad_names() -> AttributeNames {
    AttributeNames::active_directory(vec!["mail".into(), "proxyAddresses".into()])
}

pub(crate) fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> RawEntry {
    RawEntry {
        dn: dn.into(),
        attributes: attrs
            .iter()
            .map(|(k, v)| RawAttribute {
                name: k.to_string(),
                values: v.iter().map(|s| s.to_string()).collect(),
                binary: Vec::new(),
            })
            .collect(),
    }
}

fn build(entries: Vec<(ObjectKind, RawEntry)>) -> Snapshot {
    let mut b = SnapshotBuilder::new(ad_names());
    for (k, e) in entries {
        b.add(k, e).expect("entry accepted");
    }
    b.finish(ConnectionRef::default(), "corp.example.com", "DC=corp", "dc1:389", 0)
}

fn idx(s: &Snapshot, dn_prefix: &str) -> usize {
    s.objects.iter().position(|o| o.dn.starts_with(dn_prefix)).expect("object present")
}

#[test]
fn users_contacts_groups_with_addresses_and_nested_membership() {
    use ObjectKind::*;
    let s = build(vec![
        (
            Group,
            entry(
                "CN=All,DC=corp",
                &[("member", &["CN=Sales,DC=corp", "CN=Dave,DC=corp"]), ("mail", &["all@corp.example.com"])],
            ),
        ),
        (
            User,
            entry(
                "CN=Alice,DC=corp",
                &[
                    ("sAMAccountName", &["alice"]),
                    ("mail", &["Alice@Corp.example.com"]),
                    ("proxyAddresses", &["SMTP:alice@corp.example.com", "smtp:al@corp.example.com", "X500:/o=x"]),
                    ("userAccountControl", &["512"]),
                ],
            ),
        ),
        (User, entry("CN=Dave,DC=corp", &[("sAMAccountName", &["dave"]), ("userAccountControl", &["514"])])),
        (Contact, entry("CN=Partner,DC=corp", &[("mail", &["p@ext.example"])])),
        (
            Group,
            entry(
                "cn=sales,dc=CORP",
                &[("member", &["cn=alice,dc=corp", "CN=Partner,DC=corp", "CN=Outside,DC=other"])],
            ),
        ),
    ]);
    let c = s.counts();
    assert_eq!((c.users, c.contacts, c.groups, c.addresses), (2, 1, 2, 4));
    let alice = &s.objects[idx(&s, "CN=Alice")];
    assert_eq!(alice.addresses, ["al@corp.example.com", "alice@corp.example.com"]);
    assert_eq!(alice.primary_address.as_deref(), Some("alice@corp.example.com"));
    assert!(!alice.disabled);
    assert!(s.objects[idx(&s, "CN=Dave")].disabled);
    let (all, sales) = (idx(&s, "CN=All") as u32, idx(&s, "cn=sales") as u32);
    assert_eq!(s.member_of(idx(&s, "CN=Alice")), [sales]);
    assert_eq!(s.transitive_groups(idx(&s, "CN=Alice")), {
        let mut v = vec![all, sales];
        v.sort();
        v
    });
    assert_eq!(s.transitive_groups(idx(&s, "CN=Partner")).len(), 2);
    assert_eq!(s.unresolved_members, 1);
}

#[test]
fn cycles_terminate_and_a_group_is_not_its_own_member() {
    use ObjectKind::*;
    let s = build(vec![
        (Group, entry("CN=A,DC=x", &[("member", &["CN=B,DC=x", "CN=U,DC=x"])])),
        (Group, entry("CN=B,DC=x", &[("member", &["CN=A,DC=x"])])),
        (User, entry("CN=U,DC=x", &[])),
    ]);
    let (a, b) = (idx(&s, "CN=A") as u32, idx(&s, "CN=B") as u32);
    assert_eq!(s.transitive_groups(idx(&s, "CN=U")), {
        let mut v = vec![a, b];
        v.sort();
        v
    });
    assert_eq!(s.transitive_groups(a as usize), [b]);
}

#[test]
fn order_and_content_do_not_depend_on_read_order() {
    use ObjectKind::*;
    let entries = vec![
        (User, entry("CN=Zed,DC=x", &[("mail", &["z@x.example"])])),
        (Group, entry("CN=G,DC=x", &[("member", &["CN=Zed,DC=x", "CN=Amy,DC=x"])])),
        (User, entry("CN=Amy,DC=x", &[("mail", &["a@x.example"])])),
    ];
    let mut reversed = entries.clone();
    reversed.reverse();
    assert_eq!(build(entries), build(reversed));
}

#[test]
fn ranged_member_values_are_followed_until_the_star() {
    // Recorded shape of AD answers for a 3,200-member group (values shortened to three per range).
    let mut b = SnapshotBuilder::new(ad_names());
    let first = entry("CN=Big,DC=x", &[("member;range=0-1499", &["CN=u0,DC=x", "CN=u1,DC=x", "CN=u2,DC=x"])]);
    let pending = b.add(ObjectKind::Group, first).expect("group");
    assert_eq!(pending, [PendingRange { group_dn: "CN=Big,DC=x".into(), attr: "member".into(), next: 1500 }]);
    let second = entry("CN=Big,DC=x", &[("member;range=1500-2999", &["CN=u3,DC=x", "CN=u4,DC=x", "CN=u5,DC=x"])]);
    let next = b.add_range(&pending[0], second).expect("a third range");
    assert_eq!(next.next, 3000);
    let last = entry("CN=Big,DC=x", &[("member;range=3000-*", &["CN=u6,DC=x"])]);
    assert_eq!(b.add_range(&next, last), None);
    for i in 0..7 {
        b.add(ObjectKind::User, entry(&format!("CN=u{i},DC=x"), &[])).expect("user");
    }
    let s = b.finish(ConnectionRef::default(), "x", "DC=x", "s", 0);
    let big = idx(&s, "CN=Big") as u32;
    assert_eq!((0..s.objects.len()).filter(|&at| s.member_of(at) == [big]).count(), 7);
}

#[test]
fn range_attribute_names() {
    assert_eq!(parse_range_attribute("member;range=0-1499", "member"), Some(ValueRange { start: 0, end: Some(1499) }));
    assert_eq!(parse_range_attribute("Member;Range=1500-*", "member"), Some(ValueRange { start: 1500, end: None }));
    assert_eq!(parse_range_attribute("member", "member"), None);
    assert_eq!(parse_range_attribute("memberOf;range=0-1", "member"), None);
    assert_eq!(parse_range_attribute("member;range=x-1", "member"), None);
}

#[test]
fn guid_bytes_format_like_windows() {
    let bytes = [0x67, 0x45, 0x23, 0x01, 0xab, 0x89, 0xef, 0xcd, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    assert_eq!(format_guid(&bytes), "01234567-89ab-cdef-0123-456789abcdef");
}

#[test]
fn an_unparsable_dn_is_an_error_naming_it() {
    let mut b = SnapshotBuilder::new(ad_names());
    let err = b.add(ObjectKind::User, entry("garbage", &[])).expect_err("bad DN");
    assert!(err.to_string().contains("\"garbage\""), "{err}");
}

/// S-1-5-21-1-2-3-`rid` in its binary form.
fn sid(rid: u32) -> Vec<u8> {
    let mut out = vec![1, 5, 0, 0, 0, 0, 0, 5];
    for sub in [21u32, 1, 2, 3, rid] {
        out.extend_from_slice(&sub.to_le_bytes());
    }
    out
}

fn with_binary(mut e: RawEntry, name: &str, value: Vec<u8>) -> RawEntry {
    e.attributes.push(RawAttribute { name: name.into(), values: Vec::new(), binary: vec![value] });
    e
}

#[test]
fn a_primary_group_is_a_membership_member_does_not_list() {
    use ObjectKind::*;
    let s = build(vec![
        (User, with_binary(entry("CN=Alice,DC=corp", &[("primaryGroupID", &["513"])]), "objectSid", sid(1104))),
        (User, with_binary(entry("CN=Carol,DC=corp", &[("primaryGroupID", &["1200"])]), "objectSid", sid(1105))),
        // A user whose primary group is not cached, and one with no SID: no membership, no error.
        (User, with_binary(entry("CN=Guest,DC=corp", &[("primaryGroupID", &["514"])]), "objectSid", sid(501))),
        (User, entry("CN=NoSid,DC=corp", &[("primaryGroupID", &["513"])])),
        (Group, with_binary(entry("CN=Domain Users,DC=corp", &[]), "objectSid", sid(513))),
        (Group, with_binary(entry("CN=Support,DC=corp", &[]), "objectSid", sid(1200))),
        (Group, with_binary(entry("CN=All,DC=corp", &[("member", &["CN=Support,DC=corp"])]), "objectSid", sid(1300))),
    ]);
    let users = idx(&s, "CN=Domain Users") as u32;
    let support = idx(&s, "CN=Support") as u32;
    let all = idx(&s, "CN=All") as u32;
    assert_eq!(s.member_of(idx(&s, "CN=Alice")), [users]);
    assert_eq!(s.transitive_groups(idx(&s, "CN=Carol")), {
        let mut v = vec![support, all];
        v.sort_unstable();
        v
    });
    assert!(s.member_of(idx(&s, "CN=Guest")).is_empty());
    assert!(s.member_of(idx(&s, "CN=NoSid")).is_empty());
    assert_eq!(s.unresolved_members, 0, "an uncached primary group is no unresolved member value");
}

#[test]
fn a_primary_group_sid_replaces_the_last_sub_authority_of_a_well_formed_sid_only() {
    assert_eq!(sid_with_rid(&sid(1104), 513), Some(sid(513)));
    assert_eq!(sid_with_rid(&[], 513), None);
    assert_eq!(sid_with_rid(&sid(1104)[..20], 513), None, "truncated");
    assert_eq!(sid_with_rid(&[1, 0, 0, 0, 0, 0, 0, 5], 513), None, "no sub-authority");
    let mut wrong_revision = sid(1104);
    wrong_revision[0] = 2;
    assert_eq!(sid_with_rid(&wrong_revision, 513), None);
}
