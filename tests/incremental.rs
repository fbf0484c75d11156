#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Incremental sync on the real servers, through `ldapsync sync`: after any sequence of changes an
//! incremental sync of a store and a full sync into an empty one give the same content hash.
//! slapd (RFC 4533 refreshOnly; one database with a session log, one without) takes random change
//! sequences; Samba AD (`uSNChanged`, deletions by id listing
//! for an account that may not read tombstones) takes every kind of change a mail rule notices.
//!
//! These tests change their directories: `scripts/test.sh` runs them after the others.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ldapsync::cli::{self, SyncReport};
use support::env;

/// A manifest, its secrets and two stores: one synced incrementally, one read from scratch.
struct Case {
    dir: tempfile::TempDir,
    manifest: PathBuf,
}

impl Case {
    fn new(spec: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let put = |name: &str, key: &str, bytes: &[u8]| {
            let folder = dir.path().join("secrets").join(name);
            std::fs::create_dir_all(&folder).expect("secret dir");
            std::fs::write(folder.join(key), bytes).expect("secret file");
        };
        put("slapd-password", "password", env("LDAPSYNC_TEST_SLAPD_PASSWORD").as_bytes());
        put("ad-password", "password", env("LDAPSYNC_TEST_AD_PASSWORD").as_bytes());
        put("ad-admin-password", "password", env("LDAPSYNC_TEST_AD_ADMIN_PASSWORD").as_bytes());
        put("test-ca", "ca.crt", &support::read_file("LDAPSYNC_TEST_CA_FILE"));
        let manifest = dir.path().join("connection.yaml");
        let case = Self { dir, manifest };
        case.set_spec(spec);
        case
    }

    fn set_spec(&self, spec: &str) {
        let yaml = format!(
            "apiVersion: ldapsync.io/v1alpha1\nkind: LdapConnection\nmetadata: {{name: delta, namespace: mail, uid: delta-uid}}\nspec:\n{spec}"
        );
        std::fs::write(&self.manifest, yaml).expect("manifest");
    }

    async fn sync_into(&self, store: &Path) -> SyncReport {
        let secrets = self.dir.path().join("secrets");
        cli::sync(&self.manifest, Some(&secrets), store, None, None)
            .await
            .unwrap_or_else(|e| panic!("ldapsync sync: {e}"))
    }

    /// An incremental sync of the kept store and a full one from scratch: (incremental, full).
    async fn both(&self) -> (SyncReport, SyncReport) {
        let incremental = self.sync_into(&self.dir.path().join("incremental")).await;
        let fresh = self.dir.path().join("fresh");
        let _ = std::fs::remove_dir_all(&fresh);
        let full = self.sync_into(&fresh).await;
        assert_eq!(full.mode, "Full");
        (incremental, full)
    }

    /// What the two stores hold that the other does not: objects with their groups, and
    /// unresolved members (the failure message of the invariant).
    fn difference(&self) -> String {
        let load = |folder: &str| {
            let store = ldapsync::store::local::LocalStore::open(self.dir.path().join(folder)).expect("store");
            let snapshot = store.load("delta-uid").expect("load").expect("a snapshot").snapshot;
            let mut lines: Vec<String> = snapshot
                .objects
                .iter()
                .enumerate()
                .map(|(at, o)| {
                    let groups: Vec<&str> =
                        snapshot.member_of(at).iter().map(|&g| snapshot.objects[g as usize].dn.as_str()).collect();
                    format!("{:?} {} {:?} in {groups:?}", o.kind, o.dn, o.addresses)
                })
                .collect();
            lines.extend(
                snapshot
                    .foreign_members
                    .iter()
                    .map(|f| format!("unresolved {} in {}", f.dn, snapshot.objects[f.group as usize].dn)),
            );
            lines
        };
        let (incremental, full) = (load("incremental"), load("fresh"));
        let only =
            |a: &[String], b: &[String]| a.iter().filter(|l| !b.contains(l)).cloned().collect::<Vec<_>>().join("\n  ");
        format!("only incremental:\n  {}\nonly full:\n  {}", only(&incremental, &full), only(&full, &incremental))
    }

    /// Asserts the invariant after `what`, and that the sync was incremental.
    async fn assert_same(&self, what: &str) -> SyncReport {
        let (incremental, full) = self.both().await;
        assert_eq!(
            (incremental.mode, incremental.full_reason),
            ("Incremental", None),
            "{what}: the sync after a change must be incremental"
        );
        assert_eq!(
            incremental.content_hash,
            full.content_hash,
            "{what}: the incremental sync differs from a full one\n{}",
            self.difference()
        );
        incremental
    }
}

/// Runs `ldapmodify` with `ldif` as `bind_dn` over StartTLS; whether the server took it.
fn ldapmodify(addr: &str, bind_dn: &str, password: &str, ldif: &str) -> Result<(), String> {
    let mut child = Command::new("ldapmodify")
        .args(["-ZZ", "-x", "-H", &format!("ldap://{addr}"), "-D", bind_dn, "-w", password])
        .env("LDAPTLS_CACERT", env("LDAPSYNC_TEST_CA_FILE"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("ldapmodify cannot run: {e}"));
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), ldif.as_bytes()).expect("write the LDIF");
    let out = child.wait_with_output().expect("ldapmodify");
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// A small xorshift generator: a failing sequence is replayed with `LDAPSYNC_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// The entries the slapd sequence made, by DN, to pick targets from.
struct Directory {
    base: String,
    users: Vec<String>,
    groups: Vec<String>,
    next: usize,
}

impl Directory {
    fn admin(&self) -> String {
        format!("cn=admin,{}", self.base)
    }

    fn apply(&self, ldif: &str) -> bool {
        match ldapmodify(&env("LDAPSYNC_TEST_DELTA_ADDR"), &self.admin(), &env("LDAPSYNC_TEST_SLAPD_PASSWORD"), ldif) {
            Ok(()) => true,
            // Refusals a random sequence runs into (a group's last member, a DN taken) change
            // nothing; anything else is a broken test server.
            Err(e) if ["(16)", "(20)", "(32)", "(65)", "(68)"].iter().any(|code| e.contains(code)) => false,
            Err(e) => panic!("slapd refused a change for another reason: {e}\n{ldif}"),
        }
    }

    fn place(&self, rng: &mut Rng) -> String {
        format!("ou={},{}", if rng.below(4) == 0 { "out" } else { "in" }, self.base)
    }

    /// One random change: what it did, for the failure message.
    fn change(&mut self, rng: &mut Rng) -> String {
        let everything: Vec<String> = self.users.iter().chain(&self.groups).cloned().collect();
        // Weighted so that the directory grows while everything else happens to it.
        match rng.below(20) {
            0..=5 => {
                self.next += 1;
                let dn = format!("cn=u{},{}", self.next, self.place(rng));
                let ldif = format!(
                    "dn: {dn}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: u{n}\nsn: u{n}\nuid: u{n}\nmail: u{n}@delta.test\n",
                    n = self.next
                );
                if self.apply(&ldif) {
                    self.users.push(dn.clone());
                }
                format!("add {dn}")
            }
            6 | 7 => {
                self.next += 1;
                let dn = format!("cn=g{},{}", self.next, self.place(rng));
                let member = rng.pick(&everything).cloned().unwrap_or_else(|| format!("cn=nobody,{}", self.base));
                let ldif = format!(
                    "dn: {dn}\nchangetype: add\nobjectClass: groupOfNames\nobjectClass: extensibleObject\ncn: g{n}\nmail: g{n}@delta.test\nmember: {member}\n",
                    n = self.next
                );
                if self.apply(&ldif) {
                    self.groups.push(dn.clone());
                }
                format!("add {dn} with {member}")
            }
            8 | 9 => {
                let Some(dn) = rng.pick(&everything).cloned() else { return "nothing".into() };
                let mail = format!("m{}@delta.test", rng.below(1000));
                self.apply(&format!("dn: {dn}\nchangetype: modify\nreplace: mail\nmail: {mail}\n"));
                format!("mail of {dn} to {mail}")
            }
            10..=12 => {
                // A rename, or a move in or out of the base.
                let Some(dn) = rng.pick(&everything).cloned() else { return "nothing".into() };
                self.next += 1;
                let (rdn, superior) = if rng.below(2) == 0 {
                    (format!("cn=r{}", self.next), dn.split_once(',').map(|(_, p)| p.to_owned()).unwrap_or_default())
                } else {
                    (dn.split_once(',').map(|(r, _)| r.to_owned()).unwrap_or_default(), self.place(rng))
                };
                let ldif =
                    format!("dn: {dn}\nchangetype: modrdn\nnewrdn: {rdn}\ndeleteoldrdn: 0\nnewsuperior: {superior}\n");
                if self.apply(&ldif) {
                    let now = format!("{rdn},{superior}");
                    for list in [&mut self.users, &mut self.groups] {
                        for entry in list.iter_mut().filter(|e| **e == dn) {
                            entry.clone_from(&now);
                        }
                    }
                }
                format!("move {dn} to {rdn},{superior}")
            }
            13..=16 => {
                let Some(group) = rng.pick(&self.groups).cloned() else { return "nothing".into() };
                // A member by its DN, in another spelling, or one that does not exist.
                let member = match rng.below(6) {
                    0 => format!("cn=ghost{},ou=in,{}", rng.below(3), self.base),
                    1 => rng.pick(&everything).map(|d| d.to_uppercase()).unwrap_or_default(),
                    _ => rng.pick(&everything).cloned().unwrap_or_default(),
                };
                let op = if rng.below(3) == 0 { "delete" } else { "add" };
                self.apply(&format!("dn: {group}\nchangetype: modify\n{op}: member\nmember: {member}\n"));
                format!("{op} member {member} of {group}")
            }
            _ => {
                let Some(dn) = rng.pick(&everything).cloned() else { return "nothing".into() };
                if self.apply(&format!("dn: {dn}\nchangetype: delete\n")) {
                    self.users.retain(|e| *e != dn);
                    self.groups.retain(|e| *e != dn);
                }
                format!("delete {dn}")
            }
        }
    }
}

fn slapd_spec(base: &str) -> String {
    format!(
        "  domain: delta.test\n  searchBase: ou=in,{base}\n  directoryType: Generic\n  servers: {{static: ['{}']}}\n  tls: {{mode: StartTLS, ca: {{secretRef: {{name: test-ca}}}}}}\n  auth: {{simple: {{bindDN: 'cn=admin,{base}', passwordSecretRef: {{name: slapd-password}}}}}}\n  deletionSafety: {{maxDeletedObjects: 0, maxDeletedPercent: 0}}\n",
        env("LDAPSYNC_TEST_DELTA_ADDR")
    )
}

/// Random sequences of adds, modifies, renames, moves in and out of the base, membership
/// changes (dangling and differently spelt members too) and deletions, on both databases.
#[tokio::test]
async fn random_changes_on_slapd_sync_incrementally_to_what_a_full_sync_reads() {
    let seed: u64 = std::env::var("LDAPSYNC_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
    });
    println!("seed {seed} (replay with LDAPSYNC_TEST_SEED={seed})");
    for base in env("LDAPSYNC_TEST_DELTA_BASES").split(';') {
        let mut rng = Rng(seed | 1);
        let case = Case::new(&slapd_spec(base));
        let mut directory = Directory { base: base.to_owned(), users: Vec::new(), groups: Vec::new(), next: 0 };
        for _ in 0..15 {
            directory.change(&mut rng);
        }
        let (first, _) = case.both().await;
        assert_eq!((first.mode, first.full_reason), ("Full", Some("NoState")));
        let mut log = Vec::new();
        let mut incremental_entries = 0;
        let mut full_entries = 0;
        for round in 0..40 {
            for _ in 0..=rng.below(4) {
                log.push(directory.change(&mut rng));
            }
            let (incremental, full) = case.both().await;
            assert_eq!(incremental.mode, "Incremental", "{base} round {round}: {:?}", incremental.full_reason);
            if incremental.content_hash != full.content_hash {
                let recent = &log[log.len().saturating_sub(12)..];
                panic!(
                    "{base}, seed {seed}, round {round}: the incremental sync differs from a full one\n{}\nafter (last changes):\n{}",
                    case.difference(),
                    recent.join("\n")
                );
            }
            incremental_entries += incremental.entries_read;
            full_entries += full.entries_read;
        }
        println!(
            "{base}: {} users, {} groups at the end; {incremental_entries} entries read incrementally, {full_entries} by full syncs",
            directory.users.len(),
            directory.groups.len()
        );
        let unchanged = case.assert_same("no change").await;
        assert_eq!(
            (unchanged.changes_applied, unchanged.entries_read),
            (0, 0),
            "{base}: nothing changed, nothing read"
        );
        assert_eq!(unchanged.deletions, Some("SyncRefresh"));
        // That report came from the summary kept beside the snapshot; decoding the snapshot
        // instead reports the same.
        let incremental = case.dir.path().join("incremental");
        std::fs::remove_file(incremental.join("delta-uid.summary")).expect("a summary beside the snapshot");
        let decoded = case.sync_into(&incremental).await;
        assert_eq!(
            serde_json::to_value(&decoded).expect("json"),
            serde_json::to_value(&unchanged).expect("json"),
            "{base}: the summary says what the snapshot says"
        );
        // Another read plan cannot take deltas of this one.
        case.set_spec(&format!("{}  filters: {{users: '(objectClass=*)'}}\n", slapd_spec(base)));
        let report = case.sync_into(&case.dir.path().join("incremental")).await;
        assert_eq!((report.mode, report.full_reason), ("Full", Some("SpecChanged")));
    }
}

/// The stored snapshot's change-tracking state, as `change` leaves it (written back in place).
fn edit_stored_state(store: &Path, change: impl FnOnce(&mut ldapsync::domain::incremental::SyncState)) {
    let store = ldapsync::store::local::LocalStore::open(store).expect("store");
    let mut snapshot = store.load("delta-uid").expect("load").expect("a snapshot").snapshot;
    change(snapshot.sync_state.as_mut().expect("a change-tracking state"));
    store.write("delta-uid", &ldapsync::domain::codec::encode(&snapshot).expect("encode")).expect("write");
}

/// A schema change means a full sync; the sync after it is incremental again. slapd with a static
/// configuration stamps its schema with its start time: a snapshot stamped otherwise is read again.
/// On Samba a real attribute definition is added (AD tells schema changes by their USNs).
#[tokio::test]
async fn a_schema_change_means_a_full_sync() {
    let base = env("LDAPSYNC_TEST_DELTA_BASES");
    let case = Case::new(&slapd_spec(base.split(';').next().expect("a base")));
    let store = store_of(&case);
    assert_eq!(case.sync_into(&store).await.mode, "Full");
    let mut recorded = String::new();
    edit_stored_state(&store, |state| {
        recorded = state.schema.clone();
        state.schema = "19700101000000Z".into();
    });
    assert!(recorded.len() == 15 && recorded.ends_with('Z'), "slapd's schema stamp: {recorded:?}");
    let report = case.sync_into(&store).await;
    assert_eq!((report.mode, report.full_reason), ("Full", Some("SchemaChanged")), "slapd");
    let next = case.sync_into(&store).await;
    assert_eq!((next.mode, next.full_reason), ("Incremental", None), "slapd after the full sync");

    let case = Case::new(&ad_spec(&env("LDAPSYNC_TEST_AD_BASE"), &env("LDAPSYNC_TEST_AD_BIND_DN"), "ad-password"));
    assert_eq!(case.sync_into(&store_of(&case)).await.mode, "Full");
    let unchanged = case.sync_into(&store_of(&case)).await;
    assert_eq!((unchanged.mode, unchanged.full_reason), ("Incremental", None), "Samba, nothing changed");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    // OID arcs must fit 32 bits: seconds, then microseconds.
    let stamp = format!("{}.{}", now.as_secs(), now.subsec_micros());
    ad(&format!(
        "dn: CN=ldapsyncTest{name},CN=Schema,CN=Configuration,{}\nchangetype: add\nobjectClass: attributeSchema\nattributeID: 1.3.6.1.4.1.7165.4.255.77.{stamp}\nlDAPDisplayName: ldapsyncTest{name}\nattributeSyntax: 2.5.5.12\noMSyntax: 64\nisSingleValued: TRUE\n",
        env("LDAPSYNC_TEST_AD_BASE"),
        name = stamp.replace('.', "x"),
    ));
    let report = case.sync_into(&store_of(&case)).await;
    assert_eq!((report.mode, report.full_reason), ("Full", Some("SchemaChanged")), "Samba");
    let next = case.sync_into(&store_of(&case)).await;
    assert_eq!(next.mode, "Incremental", "Samba after the full sync: {:?}", next.full_reason);
}

fn store_of(case: &Case) -> PathBuf {
    case.dir.path().join("incremental")
}

/// An AD connection to `base` binding as `account` with the password in Secret `secret`.
fn ad_spec(base: &str, account: &str, secret: &str) -> String {
    format!(
        "  domain: {}\n  searchBase: {base}\n  servers: {{static: ['{}:389']}}\n  tls: {{mode: StartTLS, ca: {{secretRef: {{name: test-ca}}}}}}\n  auth: {{simple: {{bindDN: '{account}', passwordSecretRef: {{name: {secret}}}}}}}\n  contacts: {{enabled: true}}\n  deletionSafety: {{maxDeletedObjects: 0, maxDeletedPercent: 0}}\n",
        env("LDAPSYNC_TEST_AD_DOMAIN"),
        env("LDAPSYNC_TEST_AD_ADDR"),
    )
}

fn ad(ldif: &str) {
    let admin = format!("Administrator@{}", env("LDAPSYNC_TEST_AD_DOMAIN"));
    ldapmodify(&env("LDAPSYNC_TEST_AD_ADDR"), &admin, &env("LDAPSYNC_TEST_AD_ADMIN_PASSWORD"), ldif)
        .unwrap_or_else(|e| panic!("Samba refused a change: {e}\n{ldif}"));
}

/// The objectSid's RID of `dn`, read as the administrator.
fn rid_of(dn: &str) -> u32 {
    let out = Command::new("ldapsearch")
        .args(["-LLL", "-ZZ", "-x", "-H", &format!("ldap://{}", env("LDAPSYNC_TEST_AD_ADDR"))])
        .args(["-D", &format!("Administrator@{}", env("LDAPSYNC_TEST_AD_DOMAIN"))])
        .args([
            "-w",
            &env("LDAPSYNC_TEST_AD_ADMIN_PASSWORD"),
            "-b",
            dn,
            "-s",
            "base",
            "(objectClass=*)",
            "primaryGroupToken",
        ])
        .env("LDAPTLS_CACERT", env("LDAPSYNC_TEST_CA_FILE"))
        .output()
        .expect("ldapsearch");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("primaryGroupToken: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no primaryGroupToken for {dn}: {text}"))
}

/// Each kind of change on Samba, one sync after each: the same content as a full read, read
/// through `uSNChanged`, by an account that may not read tombstones (deletions by id listing)
/// and by one that may.
#[tokio::test]
async fn every_kind_of_change_on_samba_syncs_incrementally_to_what_a_full_sync_reads() {
    let admin = format!("Administrator@{}", env("LDAPSYNC_TEST_AD_DOMAIN"));
    for (account, secret, deletions) in
        [(env("LDAPSYNC_TEST_AD_BIND_DN"), "ad-password", "IdListing"), (admin, "ad-admin-password", "Tombstones")]
    {
        samba_sequence(&account, secret, deletions).await;
    }
}

async fn samba_sequence(account: &str, secret: &str, expected_deletions: &str) {
    let domain_base = env("LDAPSYNC_TEST_AD_BASE");
    let run = format!(
        "{}{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        &secret[..2]
    );
    let ou = format!("OU=Delta{run},{domain_base}");
    let outside = format!("OU=Outside{run},{domain_base}");
    ad(&format!(
        "dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n\ndn: {outside}\nchangetype: add\nobjectClass: organizationalUnit\n"
    ));
    let user = |cn: &str, at: &str| {
        format!(
            "dn: CN={cn},{at}\nchangetype: add\nobjectClass: user\nsAMAccountName: {cn}-{run}\nmail: {cn}-{run}@corp.example.test\nproxyAddresses: SMTP:{cn}-{run}@corp.example.test\n"
        )
    };
    ad(&[user("ann", &ou), user("bob", &ou), user("cid", &outside)].join("\n"));
    ad(&format!(
        "dn: CN=Team,{ou}\nchangetype: add\nobjectClass: group\nsAMAccountName: team-{run}\nmail: team-{run}@corp.example.test\nmember: CN=ann,{ou}\n\ndn: CN=All,{ou}\nchangetype: add\nobjectClass: group\nsAMAccountName: all-{run}\nmember: CN=Team,{ou}\nmember: CN=cid,{outside}\n"
    ));
    let case = Case::new(&ad_spec(&ou, account, secret));
    let (first, _) = case.both().await;
    assert_eq!((first.mode, first.users, first.groups), ("Full", 2, 2));
    assert_eq!(first.unresolved_members, 1, "cid is outside the base");
    let unchanged = case.assert_same("no change").await;
    assert_eq!(unchanged.changes_applied, 0);

    let steps: Vec<(&str, String)> = vec![
        ("a new user", user("dan", &ou)),
        (
            "a modified address",
            format!("dn: CN=bob,{ou}\nchangetype: modify\nreplace: mail\nmail: robert-{run}@corp.example.test\n"),
        ),
        ("a membership added", format!("dn: CN=Team,{ou}\nchangetype: modify\nadd: member\nmember: CN=bob,{ou}\n")),
        ("a rename", format!("dn: CN=ann,{ou}\nchangetype: modrdn\nnewrdn: CN=anna\ndeleteoldrdn: 1\n")),
        (
            "a move out of the base",
            format!("dn: CN=bob,{ou}\nchangetype: modrdn\nnewrdn: CN=bob\ndeleteoldrdn: 1\nnewsuperior: {outside}\n"),
        ),
        (
            "a move into the base (of a member of a group inside)",
            format!("dn: CN=cid,{outside}\nchangetype: modrdn\nnewrdn: CN=cid\ndeleteoldrdn: 1\nnewsuperior: {ou}\n"),
        ),
        (
            "a membership removed",
            format!("dn: CN=Team,{ou}\nchangetype: modify\ndelete: member\nmember: CN=anna,{ou}\n"),
        ),
        ("a deletion", format!("dn: CN=dan,{ou}\nchangetype: delete\n")),
        (
            "a disabled account",
            format!("dn: CN=cid,{ou}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n"),
        ),
    ];
    for (what, ldif) in steps {
        ad(&ldif);
        let report = case.assert_same(what).await;
        println!(
            "{what}: {} changes, {} entries read, deletions by {:?}",
            report.changes_applied, report.entries_read, report.deletions
        );
        assert_eq!(report.deletions, Some(expected_deletions), "{account}");
    }
    // A primary group: Team becomes cid's, and the membership stays exact both ways.
    let team = format!("CN=Team,{ou}");
    ad(&format!("dn: {team}\nchangetype: modify\nadd: member\nmember: CN=cid,{ou}\n"));
    case.assert_same("a member of the future primary group").await;
    ad(&format!("dn: CN=cid,{ou}\nchangetype: modify\nreplace: primaryGroupID\nprimaryGroupID: {}\n", rid_of(&team)));
    case.assert_same("a primary group set").await;
    ad(&format!("dn: CN=cid,{ou}\nchangetype: modify\nreplace: primaryGroupID\nprimaryGroupID: 513\n"));
    case.assert_same("a primary group set back").await;
    // A group moved out takes its nesting with it.
    ad(&format!("dn: {team}\nchangetype: modrdn\nnewrdn: CN=Team\ndeleteoldrdn: 1\nnewsuperior: {outside}\n"));
    let report = case.assert_same("a group moved out").await;
    assert_eq!(report.groups, 1);
}

/// One gateway pod's agent with the controller, syncing `spec` (push on) in a fresh namespace.
struct PushedGateway {
    agent: support::LdapsyncProcess,
    _controller: support::LdapsyncProcess,
    _store: tempfile::TempDir,
    api: kube::Api<ldapsync::api::LdapConnection>,
}

impl PushedGateway {
    async fn start(name: &str, spec: serde_json::Value) -> Self {
        use support::cluster::{create, gateway_pod, secret};
        let client = support::client().await;
        support::install_crds(&client).await;
        let ns = support::namespace(&client, name).await;
        secret(&client, &ns, "ad-password", &[("password", env("LDAPSYNC_TEST_AD_PASSWORD").as_bytes())]).await;
        secret(&client, &ns, "slapd-password", &[("password", env("LDAPSYNC_TEST_SLAPD_PASSWORD").as_bytes())]).await;
        secret(&client, &ns, "test-ca", &[("ca.crt", &support::read_file("LDAPSYNC_TEST_CA_FILE"))]).await;
        gateway_pod(&client, &ns, "gw-0").await;
        let store = tempfile::tempdir().expect("store");
        let agent = support::LdapsyncProcess::agent(&ns, "gw-0", store.path(), &env("LDAPSYNC_TEST_AD_DNS"));
        let controller = support::LdapsyncProcess::start(&ns, name, &[]);
        let api = kube::Api::namespaced(client, &ns);
        create(&api, "pushed", spec).await;
        let gateway = Self { agent, _controller: controller, _store: store, api };
        support::eventually(Duration::from_secs(60), "the first sync and an open watch", || async {
            let watching = gateway.agent.metric("ldapsync_agent_push_watches") >= 1.0;
            (watching && gateway.agent.metric("ldapsync_agent_reads_total{mode=\"Full\"}") >= 1.0).then_some(())
        })
        .await;
        gateway
    }

    /// How long after `add` ran the lookup API answers for `address`.
    async fn answered_after(&self, address: &str, add: impl FnOnce()) -> Duration {
        let polls_before = self.agent.metric("ldapsync_agent_reads_total{mode=\"Full\"}");
        let started = std::time::Instant::now();
        add();
        support::eventually(Duration::from_secs(30), &format!("{address} in the lookup API"), || async {
            self.agent.get(&format!("/v1/addresses/{address}")).map(|_| ())
        })
        .await;
        let took = started.elapsed();
        assert_eq!(
            self.agent.metric("ldapsync_agent_reads_total{mode=\"Full\"}"),
            polls_before,
            "the change came by an incremental sync, not a full one"
        );
        took
    }

    async fn last_sync(&self) -> ldapsync::api::SyncSummary {
        let connection = self.api.get("pushed").await.expect("get");
        let rows = connection.status.map(|s| s.nodes).unwrap_or_default();
        rows.into_iter().find(|r| r.pod == "gw-0").and_then(|r| r.last_sync).expect("a lastSync in the row")
    }
}

use std::time::Duration;

/// slapd pushes a new user through refreshAndPersist: the lookup API answers for it without a
/// poll (the schedule is the default 30 minutes).
#[tokio::test]
async fn a_user_added_on_slapd_is_pushed_to_the_lookup_api() {
    let base = env("LDAPSYNC_TEST_DELTA_BASES").split(';').next().expect("a base").to_owned();
    let admin = format!("cn=admin,{base}");
    let password = env("LDAPSYNC_TEST_SLAPD_PASSWORD");
    let ou = format!("ou=push{},{base}", std::process::id());
    ldapmodify(
        &env("LDAPSYNC_TEST_DELTA_ADDR"),
        &admin,
        &password,
        &format!("dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n"),
    )
    .expect("the push OU");
    let spec = serde_json::json!({
        "domain": "delta.test",
        "searchBase": ou,
        "directoryType": "Generic",
        "servers": {"static": [env("LDAPSYNC_TEST_DELTA_ADDR")]},
        "tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "test-ca"}}},
        "auth": {"simple": {"bindDN": admin, "passwordSecretRef": {"name": "slapd-password"}}},
        "incremental": {"push": true}
    });
    let gateway = PushedGateway::start("push-slapd", spec).await;
    for n in 0..3 {
        let took = gateway
            .answered_after(&format!("pushed{n}@delta.test"), || {
                let ldif = format!(
                    "dn: cn=pushed{n},{ou}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: pushed{n}\nsn: p\nmail: pushed{n}@delta.test\n"
                );
                ldapmodify(&env("LDAPSYNC_TEST_DELTA_ADDR"), &admin, &password, &ldif).expect("add");
            })
            .await;
        println!("slapd push {n}: answered after {took:?}");
    }
    assert!(gateway.agent.metric("ldapsync_agent_push_notifications_total") >= 3.0);
    let last = gateway.last_sync().await;
    assert_eq!((last.mode.as_str(), last.deletions.as_deref()), ("Incremental", Some("SyncRefresh")));
}

/// Samba pushes through AD change notification (on its own ~5 s tick): the lookup API answers
/// for a new user without a poll.
#[tokio::test]
async fn a_user_added_on_samba_is_pushed_to_the_lookup_api() {
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let ou = format!("OU=Push{run},{}", env("LDAPSYNC_TEST_AD_BASE"));
    ad(&format!("dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n"));
    let spec = serde_json::json!({
        "domain": env("LDAPSYNC_TEST_AD_DOMAIN"),
        "searchBase": ou,
        "servers": {"static": [format!("{}:389", env("LDAPSYNC_TEST_AD_ADDR"))]},
        "tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "test-ca"}}},
        "auth": {"simple": {"bindDN": env("LDAPSYNC_TEST_AD_BIND_DN"), "passwordSecretRef": {"name": "ad-password"}}},
        "incremental": {"push": true}
    });
    let gateway = PushedGateway::start("push-samba", spec).await;
    let took = gateway
        .answered_after(&format!("pushed-{run}@corp.example.test"), || {
            ad(&format!(
                "dn: CN=pushed,{ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: pushed-{run}\nmail: pushed-{run}@corp.example.test\n"
            ));
        })
        .await;
    println!("Samba push: answered after {took:?}");
    assert!(gateway.agent.metric("ldapsync_agent_push_notifications_total") >= 1.0);
    assert_eq!(gateway.last_sync().await.mode, "Incremental");
}
