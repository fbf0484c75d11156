#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Smoke tests against the real DNS peers: dnsmasq (SRV priorities and weights) and Samba's DNS.

mod support;

use std::time::Duration;

use ldapsync::directory::dns::{DnsError, DnsResolver};
use ldapsync::domain::srv::{order_targets, srv_names};
use support::{env, unreachable};

fn resolver(var: &str) -> DnsResolver {
    DnsResolver::new(Some(&env(var)), Duration::from_secs(2)).expect("resolver for the test DNS server")
}

#[tokio::test]
async fn dnsmasq_serves_srv_records_in_rfc2782_order() {
    let dns = resolver("LDAPSYNC_TEST_DNS");
    let domain = env("LDAPSYNC_TEST_SRV_DOMAIN");
    let name = &srv_names(&domain, None)[0];
    let targets = dns.srv(name).await.unwrap_or_else(|e| panic!("{}", unreachable("dnsmasq", e)));
    let mut seen: Vec<(u16, u16, String)> = targets.iter().map(|t| (t.priority, t.weight, t.host.clone())).collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (10, 100, "ldap1.example.test".to_owned()),
            (20, 25, "ldap3.example.test".to_owned()),
            (20, 75, "ldap2.example.test".to_owned()),
        ]
    );
    let ordered = order_targets(targets, |max| max);
    assert_eq!(ordered[0].host, "ldap1.example.test");
    let ips = dns.addresses(&ordered[0].host).await.expect("A record of ldap1");
    assert_eq!(ips, ["127.0.0.2".parse::<std::net::IpAddr>().expect("ip")]);
}

#[tokio::test]
async fn dnsmasq_site_record_comes_first() {
    let dns = resolver("LDAPSYNC_TEST_DNS");
    let names = srv_names(&env("LDAPSYNC_TEST_SRV_DOMAIN"), Some("hq"));
    let site = dns.srv(&names[0]).await.unwrap_or_else(|e| panic!("{}", unreachable("dnsmasq", e)));
    assert_eq!(site.iter().map(|t| t.host.as_str()).collect::<Vec<_>>(), ["ldap2.example.test"]);
}

#[tokio::test]
async fn a_name_without_srv_records_is_reported_as_such() {
    let dns = resolver("LDAPSYNC_TEST_DNS");
    match dns.srv("_ldap._tcp.nosrv.example.test").await {
        Err(DnsError::NoSrvRecords { name }) => assert_eq!(name, "_ldap._tcp.nosrv.example.test"),
        other => panic!("expected NoSrvRecords from dnsmasq, got {other:?}"),
    }
}

#[tokio::test]
async fn samba_dns_publishes_the_domain_controller() {
    let dns = resolver("LDAPSYNC_TEST_AD_DNS");
    let domain = env("LDAPSYNC_TEST_AD_DOMAIN");
    let targets =
        dns.srv(&srv_names(&domain, None)[0]).await.unwrap_or_else(|e| panic!("{}", unreachable("Samba DNS", e)));
    let dc = env("LDAPSYNC_TEST_AD_HOST");
    assert!(targets.iter().any(|t| t.host.eq_ignore_ascii_case(&dc) && t.port == 389), "{targets:?}");
    let ips = dns.addresses(&dc).await.expect("A record of the DC");
    assert!(ips.contains(&env("LDAPSYNC_TEST_AD_ADDR").parse().expect("ip")), "{ips:?}");
}
