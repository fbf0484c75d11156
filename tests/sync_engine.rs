#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! The sync engine end to end on real servers, through the same functions as `ldapsync sync` and
//! `ldapsync check`: Samba AD (simple bind over StartTLS, Kerberos sealed and over TLS), slapd
//! (generic schema), dnsmasq (priority, site, failover), and a table of bad inputs.

mod support;

use std::path::{Path, PathBuf};

use ldapsync::cli;
use ldapsync::domain::snapshot::{ObjectKind, Snapshot};
use ldapsync::store::local::LocalStore;
use support::env;

/// A manifest plus its secrets folder and a store, in a temporary directory.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = dir.path().join("secrets");
        let put = |name: &str, key: &str, bytes: &[u8]| {
            std::fs::create_dir_all(secrets.join(name)).expect("secret dir");
            std::fs::write(secrets.join(name).join(key), bytes).expect("secret file");
        };
        put("sync-password", "password", format!("{}\n", env("LDAPSYNC_TEST_AD_PASSWORD")).as_bytes());
        put("wrong-password", "password", b"Not-The-Password1");
        // The seed's disabled user, with his right password: AD answers `data 533`.
        put("dave-password", "password", b"Dave#Pass-123");
        put("slapd-password", "password", env("LDAPSYNC_TEST_SLAPD_PASSWORD").as_bytes());
        put("test-ca", "ca.crt", &support::read_file("LDAPSYNC_TEST_CA_FILE"));
        put("other-ca", "ca.crt", &support::read_file("LDAPSYNC_TEST_OTHER_CA_FILE"));
        put("sync-keytab", "keytab", &support::read_file("LDAPSYNC_TEST_KEYTAB"));
        put("two-principals", "keytab", &support::read_file("LDAPSYNC_TEST_KEYTAB_TWO_PRINCIPALS"));
        Self { dir }
    }

    fn manifest(&self, name: &str, spec: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.yaml"));
        let yaml = format!(
            "apiVersion: ldapsync.io/v1alpha1\nkind: LdapConnection\nmetadata: {{name: {name}, namespace: mail, uid: {name}-uid}}\nspec:\n{spec}"
        );
        std::fs::write(&path, yaml).expect("manifest");
        path
    }

    fn secrets(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    async fn sync(&self, manifest: &Path, dns: &str, approve: Option<&str>) -> Result<cli::SyncReport, cli::CliError> {
        cli::sync(manifest, Some(&self.secrets()), &self.store(), Some(dns), approve).await
    }

    fn stored(&self, name: &str) -> Snapshot {
        LocalStore::open(self.store())
            .expect("store")
            .load(&format!("{name}-uid"))
            .expect("load")
            .expect("a stored snapshot")
            .snapshot
    }

    fn stored_bytes(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.store().join(format!("{name}-uid.snap"))).ok()
    }
}

fn ad_dns() -> String {
    env("LDAPSYNC_TEST_AD_DNS")
}

fn srv_dns() -> String {
    env("LDAPSYNC_TEST_DNS")
}

fn ad_spec(extra: &str) -> String {
    format!(
        "  domain: {}\n  searchBase: {}\n  tls: {{mode: StartTLS, ca: {{secretRef: {{name: test-ca}}}}}}\n  auth: {{simple: {{bindDN: {}, passwordSecretRef: {{name: sync-password}}}}}}\n{extra}",
        env("LDAPSYNC_TEST_AD_DOMAIN"),
        env("LDAPSYNC_TEST_AD_BASE"),
        env("LDAPSYNC_TEST_AD_BIND_DN"),
    )
}

fn slapd_spec(domain: &str, extra: &str) -> String {
    format!(
        "  domain: {domain}\n  searchBase: {}\n  directoryType: Generic\n  tls: {{mode: StartTLS, ca: {{secretRef: {{name: test-ca}}}}}}\n  auth: {{simple: {{bindDN: '{}', passwordSecretRef: {{name: slapd-password}}}}}}\n{extra}",
        env("LDAPSYNC_TEST_SLAPD_BASE"),
        env("LDAPSYNC_TEST_SLAPD_BIND_DN"),
    )
}

fn find<'a>(s: &'a Snapshot, prefix: &str) -> (usize, &'a ldapsync::domain::snapshot::DirObject) {
    s.objects
        .iter()
        .enumerate()
        .find(|(_, o)| o.dn.starts_with(prefix))
        .map(|(at, o)| (at, o.as_ref()))
        .unwrap_or_else(|| panic!("{prefix} not in snapshot"))
}

fn group_names(s: &Snapshot, groups: &[u32]) -> Vec<String> {
    let mut v: Vec<String> = groups
        .iter()
        .map(|g| s.objects[*g as usize].dn.split(',').next().unwrap_or_default().trim_start_matches("CN=").to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn disabled_accounts_are_recipients_by_default_and_left_out_on_exclude() {
    let case = Case::new();
    let included = case.manifest("included", &ad_spec(""));
    case.sync(&included, &ad_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    let s = case.stored("included");
    let dave = find(&s, "CN=Dave Disabled").1;
    assert!(dave.disabled && !dave.addresses.is_empty(), "Include caches the disabled user, flagged: {dave:?}");
    let dave_address = dave.addresses[0].clone();

    let excluded = case.manifest("excluded", &ad_spec("  disabledAccounts: Exclude\n"));
    let report = case.sync(&excluded, &ad_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    let s = case.stored("excluded");
    assert!(s.objects.iter().all(|o| !o.disabled), "Exclude caches no disabled account");
    assert!(!s.objects.iter().any(|o| o.addresses.contains(&dave_address)), "{dave_address} is no recipient");
    assert!(s.objects.iter().any(|o| o.dn.starts_with("CN=Alice Liddell")), "enabled users stay");
    let included = case.stored("included");
    let disabled = included.objects.iter().filter(|o| o.disabled).count() as u64;
    assert!(disabled >= 1, "Samba has disabled accounts (Dave, and its built-in ones)");
    assert_eq!(report.users + disabled, included.counts().users, "exactly the disabled users are left out");

    let generic = case.manifest("generic", &slapd_spec("example.test", "  disabledAccounts: Exclude\n"));
    let refused = case.sync(&generic, &ad_dns(), None).await.expect_err("a generic directory has no disabled flag");
    assert_eq!(refused.reason(), "InvalidSpec", "{refused}");
    assert!(refused.to_string().contains("spec.disabledAccounts"), "{refused}");
}

#[tokio::test]
async fn active_directory_sync_over_starttls_builds_the_expected_snapshot() {
    let case = Case::new();
    let m = case.manifest("corp", &ad_spec(""));
    let report = case.sync(&m, &ad_dns(), None).await.unwrap_or_else(|e| panic!("sync against Samba: {e}"));
    assert!(report.server.starts_with(&format!("{}:389", env("LDAPSYNC_TEST_AD_HOST"))), "{}", report.server);
    assert_eq!(report.contacts, 0, "contacts are off by default");
    // No site in the spec: the DC's netlogon answer places the client in hq, whose DCs come first.
    assert_eq!(report.site.as_deref(), Some("hq"));
    assert!(report.users > 1520, "{} users", report.users);
    let s = case.stored("corp");

    let (alice_i, alice) = find(&s, "CN=Alice Liddell");
    let domain = env("LDAPSYNC_TEST_AD_DOMAIN");
    assert_eq!(alice.primary_address.as_deref(), Some(format!("alice@{domain}").as_str()));
    assert_eq!(
        alice.addresses,
        [format!("a.liddell@{domain}"), "alice@alias.example.test".into(), format!("alice@{domain}")]
    );
    assert_eq!(alice.account_name.as_deref(), Some("alice"));
    assert_eq!(alice.principal_name.as_deref(), Some(format!("alice@{domain}").as_str()));
    assert_eq!(alice.id.len(), 36, "objectGUID as a GUID string: {}", alice.id);
    assert!(!alice.disabled);
    // Domain Users is alice's primary group: no `member` value names her there, AD's primaryGroupID
    // does. (Domain Users is itself a member of the built-in Users group.)
    assert_eq!(group_names(&s, s.member_of(alice_i)), ["Domain Users", "LoopA", "Sales"]);
    assert_eq!(
        group_names(&s, &s.transitive_groups(alice_i)),
        ["AllStaff", "Domain Users", "LoopA", "LoopB", "Sales", "Users"]
    );
    assert!(find(&s, "CN=Dave Disabled").1.disabled);

    // Carol's primary group was set to Support (`samba-tool user setprimarygroup`): Support's `member`
    // no longer lists her, and Domain Users got her as an ordinary member.
    let (carol_i, _) = find(&s, "CN=Carol Danvers");
    assert_eq!(group_names(&s, s.member_of(carol_i)), ["Domain Users", "Engineering", "Support"]);
    assert!(group_names(&s, &s.transitive_groups(carol_i)).contains(&"Support".to_owned()));
    // At the domain root every user is in Domain Users, except Guest (whose primary group is
    // Domain Guests).
    let (domain_users, _) = find(&s, "CN=Domain Users");
    let outside: Vec<&str> = s
        .objects
        .iter()
        .enumerate()
        .filter(|(at, o)| o.kind == ObjectKind::User && !s.member_of(*at).contains(&(domain_users as u32)))
        .map(|(_, o)| o)
        .map(|o| o.account_name.as_deref().unwrap_or(&o.dn))
        .collect();
    assert_eq!(outside, ["Guest"], "users outside Domain Users");

    let (big, _) = find(&s, "CN=BigGroup");
    let members = (0..s.objects.len()).filter(|&at| s.member_of(at).contains(&(big as u32))).count();
    assert_eq!(members, 1510, "every member of the 1,510-member group");

    assert_eq!(report.duplicate_addresses, 1);
    assert!(
        report.duplicate_examples[0].starts_with(&format!("address helpdesk@{domain}: ")),
        "{:?}",
        report.duplicate_examples
    );
}

#[tokio::test]
async fn other_mail_enabled_classes_are_recipients_when_listed() {
    let case = Case::new();
    let domain = env("LDAPSYNC_TEST_AD_DOMAIN");
    let front_desk = format!("frontdesk@{domain}");
    let m = case.manifest("default-classes", &ad_spec(""));
    case.sync(&m, &ad_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    let s = case.stored("default-classes");
    assert!(!s.objects.iter().any(|o| o.addresses.contains(&front_desk)), "not cached by default");

    let m = case.manifest("more-classes", &ad_spec("  mailObjectClasses: [remoteMailRecipient]\n"));
    let report = case.sync(&m, &ad_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    assert_eq!(report.recipients, 1, "{report:?}");
    let s = case.stored("more-classes");
    let (_, desk) = find(&s, "CN=Front Desk");
    assert_eq!(desk.kind, ObjectKind::Recipient);
    assert_eq!(desk.primary_address.as_deref(), Some(front_desk.as_str()));
}

#[tokio::test]
async fn nested_groups_resolve_across_two_connections_of_one_domain() {
    let case = Case::new();
    let base = env("LDAPSYNC_TEST_AD_BASE");
    // One connection reads only the groups, a sibling in the same store (one pod) only the staff.
    for (name, ou) in [("corp-groups", "OU=Groups"), ("corp-staff", "OU=Staff")] {
        let spec = ad_spec("").replace(&format!("searchBase: {base}"), &format!("searchBase: '{ou},{base}'"));
        let m = case.manifest(name, &spec);
        case.sync(&m, &ad_dns(), None).await.unwrap_or_else(|e| panic!("sync {name}: {e}"));
    }
    let domain = env("LDAPSYNC_TEST_AD_DOMAIN");
    let found = std::process::Command::new(env!("CARGO_BIN_EXE_ldapsync"))
        .args(["lookup", &format!("alice@{domain}"), "--store"])
        .arg(case.store())
        .output()
        .expect("run lookup");
    assert_eq!(found.status.code(), Some(0), "{}", String::from_utf8_lossy(&found.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&found.stdout).expect("json");
    let groups: Vec<&str> =
        answer["groups"].as_array().expect("groups").iter().filter_map(|g| g["name"].as_str()).collect();
    // Sales and LoopA list alice; AllStaff and LoopB nest them: all in the other connection.
    assert_eq!(groups, ["AllStaff", "LoopA", "LoopB", "Sales"], "{answer}");
}

#[tokio::test]
async fn typed_values_idn_domains_and_shared_addresses_as_ad_holds_them() {
    let case = Case::new();
    let spec = ad_spec("  contacts: {enabled: true}\n  emailAttributes: [mail, proxyAddresses, otherMailbox]\n");
    let m = case.manifest("addresses", &spec);
    case.sync(&m, &ad_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    let s = case.stored("addresses");
    // otherMailbox carries its type, as targetAddress does: the address is what follows `SMTP:`.
    assert_eq!(find(&s, "CN=Mail Router").1.addresses, ["router@relay.example"]);
    // The directory holds the domain in Unicode; the cache in A-labels; either form is found.
    assert_eq!(find(&s, "CN=Joerg Buecher").1.addresses, ["jörg@xn--bcher-kva.test"]);
    let domain = env("LDAPSYNC_TEST_AD_DOMAIN");
    let lookup = |address: &str| -> serde_json::Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ldapsync"))
            .args(["lookup", address, "--store"])
            .arg(case.store())
            .output()
            .expect("run lookup");
        assert_eq!(out.status.code(), Some(0), "{address}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    };
    for asked in ["jörg@bücher.test", "JÖRG@xn--bcher-kva.test"] {
        assert_eq!(
            lookup(asked)["dn"],
            format!("CN=Joerg Buecher,OU=Staff,{}", env("LDAPSYNC_TEST_AD_BASE")),
            "{asked}"
        );
    }
    // helpdesk@ is the Helpdesk group's primary address and one of frank's aliases: the group answers.
    let helpdesk = lookup(&format!("helpdesk@{domain}"));
    assert_eq!(helpdesk["kind"], "group", "{helpdesk}");
    assert!(helpdesk.to_string().contains("CN=Frank Helper"), "frank is listed as also holding it: {helpdesk}");
}

#[tokio::test]
async fn contacts_are_synced_when_enabled() {
    let case = Case::new();
    let m = case.manifest("corp-contacts", &ad_spec("  contacts: {enabled: true}\n"));
    let report = case.sync(&m, &ad_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    assert_eq!(report.contacts, 3);
    let s = case.stored("corp-contacts");
    let (partner_i, partner) = find(&s, "CN=Ext Partner");
    assert_eq!(partner.kind, ObjectKind::Contact);
    assert_eq!(partner.addresses, ["partner@external.example"]);
    assert_eq!(group_names(&s, &s.transitive_groups(partner_i)), ["AllStaff", "Sales"]);
}

#[tokio::test]
async fn kerberos_sealed_and_over_tls_read_the_same_directory_as_simple_bind() {
    let case = Case::new();
    let simple = case.manifest("simple", &ad_spec(""));
    let sealed = case.manifest(
        "sealed",
        &ad_spec("").replace(
            "  tls: {mode: StartTLS, ca: {secretRef: {name: test-ca}}}\n  auth: {simple: {bindDN: svc-sync@corp.example.test, passwordSecretRef: {name: sync-password}}}\n",
            "  tls: {mode: None}\n  auth: {kerberos: {keytabSecretRef: {name: sync-keytab}}}\n",
        ),
    );
    let over_tls = case.manifest(
        "krbtls",
        &ad_spec(&format!(
            "  servers: {{static: ['{}:389']}}\n",
            env("LDAPSYNC_TEST_AD_SASL_TLS_ADDR")
        ))
        .replace(
            "  tls: {mode: StartTLS, ca: {secretRef: {name: test-ca}}}\n  auth: {simple: {bindDN: svc-sync@corp.example.test, passwordSecretRef: {name: sync-password}}}\n",
            &format!(
                "  tls: {{mode: StartTLS, serverName: {}, ca: {{secretRef: {{name: test-ca}}}}}}\n  auth: {{kerberos: {{keytabSecretRef: {{name: sync-keytab}}, principal: svc-sync}}}}\n",
                env("LDAPSYNC_TEST_AD_HOST")
            ),
        ),
    );
    for m in [&simple, &sealed, &over_tls] {
        case.sync(m, &ad_dns(), None).await.unwrap_or_else(|e| panic!("{}: {e}", m.display()));
    }
    let (a, b, c) = (case.stored("simple"), case.stored("sealed"), case.stored("krbtls"));
    assert!(c.server.contains(&env("LDAPSYNC_TEST_AD_SASL_TLS_ADDR")), "{}", c.server);
    assert_eq!(a.objects, b.objects, "sealed Kerberos read differs from the simple-bind read");
    assert_eq!(a.objects, c.objects, "Kerberos over StartTLS read differs from the simple-bind read");
}

#[tokio::test]
async fn kerberos_needs_no_krb5_conf_the_kdc_is_the_chosen_dc() {
    let case = Case::new();
    let sealed = case.manifest(
        "no-krb5-conf",
        &ad_spec("").replace(
            "  tls: {mode: StartTLS, ca: {secretRef: {name: test-ca}}}\n  auth: {simple: {bindDN: svc-sync@corp.example.test, passwordSecretRef: {name: sync-password}}}\n",
            "  tls: {mode: None}\n  auth: {kerberos: {keytabSecretRef: {name: sync-keytab}}}\n",
        ),
    );
    // The process has no KRB5_CONFIG and no /etc/krb5.conf to fall back on that knows the realm:
    // only ldapsync's own file (the KDC is the DC the sync chose) can make the bind work.
    assert!(
        !Path::new("/etc/krb5.conf").exists()
            || !std::fs::read_to_string("/etc/krb5.conf").unwrap_or_default().contains(&env("LDAPSYNC_TEST_AD_REALM"))
    );
    let tmp = tempfile::tempdir().expect("TMPDIR");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ldapsync"))
        .args(["sync", "-f"])
        .arg(&sealed)
        .arg("--secrets-dir")
        .arg(case.secrets())
        .arg("--store")
        .arg(case.store())
        .args(["--dns-server", &ad_dns()])
        .env_remove("KRB5_CONFIG")
        .env("TMPDIR", tmp.path())
        .output()
        .expect("run ldapsync sync");
    assert!(out.status.success(), "Kerberos without a krb5.conf: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert!(report["users"].as_u64().is_some_and(|u| u > 1500), "{report}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("TMPDIR").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "the generated krb5.conf and the staged keytab are gone: {left:?}");
}

#[tokio::test]
async fn generic_ldap_through_srv_uses_the_preferred_server_and_resolves_nesting() {
    let case = Case::new();
    let m = case.manifest("generic", &slapd_spec(&env("LDAPSYNC_TEST_SRV_DOMAIN"), ""));
    let report = case.sync(&m, &srv_dns(), None).await.unwrap_or_else(|e| panic!("sync against slapd: {e}"));
    assert!(report.server.starts_with("ldap1.example.test:389"), "priority 10 wins: {}", report.server);
    // 50 inetOrgPerson + 3 AD-shaped `user` entries (a subclass of inetOrgPerson); 3 generic groups.
    assert_eq!((report.users, report.groups), (53, 3));
    let s = case.stored("generic");
    let (u0, user0) = find(&s, "uid=u000000,");
    assert_eq!(user0.account_name.as_deref(), Some("u000000"));
    assert_eq!(user0.addresses, ["u000000@example.test"]);
    assert_eq!(user0.id.len(), 36, "entryUUID: {}", user0.id);
    let names: Vec<&str> = s
        .transitive_groups(u0)
        .iter()
        .map(|g| s.objects[*g as usize].dn.split(',').next().unwrap_or_default())
        .collect();
    assert_eq!(names, ["cn=admins", "cn=everyone", "cn=staff"], "groupOfUniqueNames and nesting");
    let (_, staff) = find(&s, "cn=staff,");
    assert_eq!(staff.addresses, ["staff@example.test"]);
}

#[tokio::test]
async fn a_site_record_is_asked_before_the_domain_wide_one() {
    let case = Case::new();
    let m = case.manifest("site", &slapd_spec(&env("LDAPSYNC_TEST_SRV_DOMAIN"), "  servers: {srv: {site: hq}}\n"));
    let report = case.sync(&m, &srv_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    assert!(report.server.starts_with("ldap2.example.test:389"), "{}", report.server);
}

#[tokio::test]
async fn a_site_whose_dcs_are_all_down_falls_back_to_the_domains_other_dcs() {
    let case = Case::new();
    let spec =
        slapd_spec(&env("LDAPSYNC_TEST_SRV_DOMAIN"), "  servers: {srv: {site: branch}}\n  timeouts: {connect: 2s}\n");
    let m = case.manifest("branch", &spec);
    let report = case.sync(&m, &srv_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    // branch's only DC (ldap3) is dead: the domain-wide record's preferred DC serves.
    assert!(report.server.starts_with("ldap1.example.test:389"), "{}", report.server);
}

#[tokio::test]
async fn a_dead_server_in_the_list_is_skipped() {
    let case = Case::new();
    let m = case.manifest(
        "static",
        &slapd_spec(
            "example.test",
            "  servers: {static: ['127.0.0.4:389', '127.0.0.3:389']}\n  timeouts: {connect: 2s}\n",
        ),
    );
    let report = case.sync(&m, &srv_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    assert_eq!(report.server, "127.0.0.3:389");
}

/// Stops slapd-3 (the preferred server of failover.example.test) and restarts it when dropped.
struct StoppedPeer(&'static str);

impl StoppedPeer {
    fn stop(peer: &'static str) -> Self {
        support::test_env(&["stop", peer]);
        Self(peer)
    }
}

impl Drop for StoppedPeer {
    fn drop(&mut self) {
        support::test_env(&["start", self.0]);
    }
}

#[tokio::test]
async fn failover_to_the_next_priority_when_the_preferred_server_stops() {
    let case = Case::new();
    let m = case.manifest("failover", &slapd_spec("failover.example.test", ""));
    let first = case.sync(&m, &srv_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    assert!(first.server.starts_with("ldap4.example.test:389"), "{}", first.server);
    let before = case.stored("failover");
    {
        let _stopped = StoppedPeer::stop("slapd-3");
        let second = case.sync(&m, &srv_dns(), None).await.unwrap_or_else(|e| panic!("sync with ldap4 down: {e}"));
        assert!(second.server.starts_with("ldap2.example.test:389"), "{}", second.server);
    }
    assert_eq!(case.stored("failover").objects, before.objects, "both servers hold the same data");
}

#[tokio::test]
async fn deletion_safety_holds_a_large_drop_until_approved() {
    let case = Case::new();
    let m = case.manifest("guarded", &slapd_spec("example.test", "  servers: {static: ['127.0.0.2:389']}\n"));
    case.sync(&m, &srv_dns(), None).await.unwrap_or_else(|e| panic!("first sync: {e}"));
    let before = case.stored_bytes("guarded");
    // A narrower filter drops 43 of 56 objects (over 20 %).
    let narrowed = case.manifest(
        "guarded",
        &slapd_spec("example.test", "  servers: {static: ['127.0.0.2:389']}\n  filters: {users: '(uid=u00000*)'}\n"),
    );
    let err = case.sync(&narrowed, &srv_dns(), None).await.expect_err("held");
    assert_eq!(err.reason(), "DeletionThresholdExceeded", "{err}");
    let msg = err.to_string();
    assert!(msg.contains("remove 43 of 56"), "{msg}");
    assert_eq!(case.stored_bytes("guarded"), before, "a held sync leaves the cache alone");
    let hash =
        msg.split("approve-deletions to ").nth(1).and_then(|r| r.split_whitespace().next()).expect("hash in message");
    let approved = case.sync(&narrowed, &srv_dns(), Some(hash)).await.unwrap_or_else(|e| panic!("approved sync: {e}"));
    assert_eq!((approved.users, approved.deleted), (10, 43));
    assert_eq!(approved.content_hash, hash, "the approved sync stored exactly the held content");
}

#[tokio::test]
async fn check_reports_server_capabilities_and_counts() {
    let case = Case::new();
    let m = case.manifest("check", &ad_spec("  contacts: {enabled: true}\n"));
    let report = cli::check(&m, Some(&case.secrets()), Some(&ad_dns())).await.unwrap_or_else(|e| panic!("check: {e}"));
    assert!(report.tls && report.paged_results && report.dirsync, "{report:?}");
    assert_eq!(report.counts.get("contacts"), Some(&3), "Ext Partner, Vendor Contact, Mail Router");
    assert!(report.counts.get("users").is_some_and(|n| *n > 1520), "{report:?}");
    assert_eq!(report.root_dse.get("defaultNamingContext"), Some(&vec![env("LDAPSYNC_TEST_AD_BASE")]));
}

#[tokio::test]
async fn bad_inputs_get_their_reason_and_leave_the_previous_snapshot_untouched() {
    let case = Case::new();
    let good = ad_spec("  timeouts: {connect: 2s}\n");
    let m = case.manifest("victim", &good);
    case.sync(&m, &ad_dns(), None).await.unwrap_or_else(|e| panic!("good sync: {e}"));
    let before = case.stored_bytes("victim").expect("a snapshot");
    let base = env("LDAPSYNC_TEST_AD_BASE");
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong password", good.replace("sync-password", "wrong-password"), "InvalidCredentials"),
        ("unreachable DC", format!("{good}  servers: {{static: ['127.0.0.4:389']}}\n"), "NoDomainControllerReachable"),
        ("wrong CA", good.replace("name: test-ca", "name: other-ca"), "TlsHandshakeFailed"),
        (
            "keytab with two principals",
            good.replace(
                "auth: {simple: {bindDN: svc-sync@corp.example.test, passwordSecretRef: {name: sync-password}}}",
                "auth: {kerberos: {keytabSecretRef: {name: two-principals}}}",
            ),
            "KeytabInvalid",
        ),
        ("malformed filter", format!("{good}  filters: {{groups: '(cn=Sales'}}\n"), "InvalidFilter"),
        ("missing search base", good.replace(&base, &format!("OU=Gone,{base}")), "SearchBaseNotFound"),
        (
            "domain without SRV records",
            good.replace("domain: corp.example.test", "domain: nosrv.corp.example.test"),
            "DnsLookupFailed",
        ),
        ("missing secret", good.replace("name: sync-password", "name: no-such-secret"), "SecretNotFound"),
        (
            "a disabled account",
            good.replace("bindDN: svc-sync@", "bindDN: dave@").replace("name: sync-password", "name: dave-password"),
            "AccountDisabled",
        ),
        (
            "GSSAPI refused over TLS by a strict DC",
            good.replace(
                "auth: {simple: {bindDN: svc-sync@corp.example.test, passwordSecretRef: {name: sync-password}}}",
                "auth: {kerberos: {keytabSecretRef: {name: sync-keytab}}}",
            ),
            "StrongerAuthRequired",
        ),
        ("plain simple bind", good.replace("mode: StartTLS, ", "mode: None, "), "InvalidSpec"),
        ("unparsable timeout", good.replace("connect: 2s", "connect: soon"), "InvalidSpec"),
    ];
    for (name, spec, reason) in cases {
        let m = case.manifest("victim", &spec);
        match case.sync(&m, &ad_dns(), None).await {
            Ok(r) => panic!("{name}: expected {reason}, the sync succeeded via {}", r.server),
            Err(e) => assert_eq!(e.reason(), reason, "{name}: {e}"),
        }
        assert_eq!(
            case.stored_bytes("victim").as_deref(),
            Some(before.as_slice()),
            "{name}: the cached snapshot changed"
        );
    }
}

#[tokio::test]
async fn a_hundred_thousand_users_sync_completely() {
    let case = Case::new();
    let base = env("LDAPSYNC_TEST_VOLUME_BASE");
    let users: u64 = env("LDAPSYNC_TEST_VOLUME_USERS").parse().expect("a number");
    let addr = env("LDAPSYNC_TEST_VOLUME_URL").trim_start_matches("ldap://").to_owned();
    let spec = format!(
        "  domain: volume.test\n  searchBase: {base}\n  directoryType: Generic\n  servers: {{static: ['{addr}']}}\n  tls: {{mode: StartTLS, ca: {{secretRef: {{name: test-ca}}}}}}\n  auth: {{simple: {{bindDN: 'cn=admin,{base}', passwordSecretRef: {{name: slapd-password}}}}}}\n  emailAttributes: [mail]\n  timeouts: {{operation: 120s}}\n"
    );
    let m = case.manifest("volume", &spec);
    let started = std::time::Instant::now();
    let report = case.sync(&m, &srv_dns(), None).await.unwrap_or_else(|e| panic!("volume sync: {e}"));
    eprintln!("{users} users synced in {:?} (debug build)", started.elapsed());
    assert_eq!((report.users, report.groups, report.addresses), (users, 1000, users + 1000));
    assert_eq!(report.unresolved_members, 0);
    let s = case.stored("volume");
    assert!(
        (0..s.objects.len()).filter(|&at| s.objects[at].kind == ObjectKind::User).all(|at| s.member_of(at).len() == 1),
        "one group each"
    );
    // u0000100 is in g00001, which g00000 contains.
    let (i, _) = find(&s, "uid=u0000100,");
    assert_eq!(s.transitive_groups(i).len(), 2);
}

/// One HTTP/1.1 GET over a fresh connection; returns (status, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect to the lookup API");
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.expect("read");
    let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_synced_store_answers_lookups_from_the_cli_and_over_http() {
    let case = Case::new();
    let m = case.manifest("served", &ad_spec("  contacts: {enabled: true}\n"));
    case.sync(&m, &ad_dns(), None).await.unwrap_or_else(|e| panic!("sync: {e}"));
    let domain = env("LDAPSYNC_TEST_AD_DOMAIN");

    let bin = env!("CARGO_BIN_EXE_ldapsync");
    let found = std::process::Command::new(bin)
        .args(["lookup", &format!("A.Liddell@{domain}"), "--store"])
        .arg(case.store())
        .output()
        .expect("run lookup");
    assert_eq!(found.status.code(), Some(0), "{}", String::from_utf8_lossy(&found.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&found.stdout).expect("json");
    assert_eq!(answer["dn"], format!("CN=Alice Liddell,OU=Staff,{}", env("LDAPSYNC_TEST_AD_BASE")));
    let missing = std::process::Command::new(bin)
        .args(["lookup", "nobody@nowhere.example", "--store"])
        .arg(case.store())
        .output()
        .expect("run lookup");
    assert_eq!(missing.status.code(), Some(1));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ldapsync::agent::serve::serve_store(case.store(), listener, cli::unix_now, async {
        let _ = stopped.await;
    }));
    let (code, body) = http_get(addr, "/v1/addresses/partner@external.example").await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["kind"], "contact");
    let groups: Vec<&str> = v["groups"].as_array().expect("groups").iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(groups, ["AllStaff", "Sales"]);
    let (code, body) = http_get(addr, &format!("/v1/groups/big@{domain}/members?transitive=true")).await;
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).expect("json").as_array().map(Vec::len), Some(1510));
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    let _ = stop.send(());
    server.await.expect("join").expect("server ended cleanly");
}
