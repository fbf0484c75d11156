#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Every manifest under examples/ is valid: connections pass the controller's spec validation,
//! schedules parse, and the examples cover what the documentation promises.

use ldapsync::api::{LdapConnection, LdapSyncSchedule};
use serde::Deserialize;

#[test]
fn example_manifests_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut connections = Vec::new();
    let mut schedules = Vec::new();
    for entry in std::fs::read_dir(dir).expect("examples/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read example");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_owned();
            match kind.as_str() {
                "LdapConnection" => {
                    let c: LdapConnection =
                        serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    ldapsync::domain::validation::validate_spec(&c.spec).unwrap_or_else(|e| {
                        panic!("{}: {} is invalid: {e}", path.display(), c.metadata.name.clone().unwrap_or_default())
                    });
                    connections.push(c);
                }
                "LdapSyncSchedule" => {
                    let s: LdapSyncSchedule =
                        serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    ldapsync::domain::schedule::parse_schedule(&s.spec).unwrap_or_else(|e| {
                        panic!("{}: {} is invalid: {e}", path.display(), s.metadata.name.clone().unwrap_or_default())
                    });
                    schedules.push(s);
                }
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            }
        }
    }
    assert!(connections.iter().any(|c| c.spec.auth.kerberos.is_some()), "an example with a keytab");
    assert!(connections.iter().any(|c| c.spec.auth.simple.is_some()), "an example with simple bind");
    assert!(connections.iter().any(|c| c.spec.directory_type == ldapsync::api::DirectoryType::Generic), "OpenLDAP");
    let domains: Vec<_> = connections.iter().map(|c| c.spec.domain.as_str()).collect();
    assert!(domains.iter().any(|d| domains.iter().filter(|o| *o == d).count() >= 2), "two connections in one domain");
    let modes = |f: fn(&LdapSyncSchedule) -> bool| schedules.iter().any(f);
    assert!(
        modes(|s| s.spec.interval.is_some()) && modes(|s| s.spec.daily.is_some()) && modes(|s| s.spec.weekly.is_some())
    );
    assert!(
        modes(|s| s.spec.monthly.is_some()) && modes(|s| s.spec.once.is_some()) && modes(|s| s.spec.manual.is_some())
    );
    assert!(modes(|s| s.spec.cron.is_some()), "a schedule of every mode");
    // Every scheduleRef names an example schedule.
    for c in &connections {
        if let Some(r) = &c.spec.schedule_ref {
            assert!(
                schedules.iter().any(|s| s.metadata.name.as_deref() == Some(&r.name)),
                "{} names {}",
                c.metadata.name.clone().unwrap_or_default(),
                r.name
            );
        }
    }
}
