#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Smoke tests against the real directory peers: Samba AD (StartTLS simple bind, GSSAPI from a
//! keytab, paged reads) and the two OpenLDAP servers.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ldapsync::api::TlsMode;
use ldapsync::directory::kerberos::KerberosCredential;
use ldapsync::directory::ldap::{BindCredentials, LdapSession, ServerEndpoint};
use ldapsync::secret::Secret;
use support::{env, read_file, samba_endpoint, slapd_endpoints, transport, unreachable};

fn samba_simple() -> BindCredentials {
    BindCredentials::Simple {
        bind_dn: env("LDAPSYNC_TEST_AD_BIND_DN"),
        password: Secret::new(env("LDAPSYNC_TEST_AD_PASSWORD")),
    }
}

async fn samba_session(mode: TlsMode, port: u16) -> LdapSession {
    LdapSession::connect(&samba_endpoint(port), &transport(mode, Some("LDAPSYNC_TEST_CA_FILE")))
        .await
        .unwrap_or_else(|e| panic!("{}", unreachable("Samba AD DC", e)))
}

/// How many users of OU=Restricted the bound identity can see (svc-sync: 1, svc-sync2: 0).
async fn restricted_users_visible(s: &mut LdapSession) -> u64 {
    let base = env("LDAPSYNC_TEST_AD_BASE");
    s.search_paged(&base, "(sAMAccountName=restricted)", &["cn"], 100, |_| {})
        .await
        .expect("search for the restricted user")
}

#[tokio::test]
async fn samba_simple_bind_over_verified_starttls() {
    let mut s = samba_session(TlsMode::StartTls, 389).await;
    assert!(s.is_tls());
    s.bind(&samba_simple()).await.expect("simple bind over StartTLS");
    assert_eq!(restricted_users_visible(&mut s).await, 1, "bound as svc-sync");
    s.close().await;
}

#[tokio::test]
async fn samba_simple_bind_over_ldaps() {
    let mut s = samba_session(TlsMode::Ldaps, 636).await;
    s.bind(&samba_simple()).await.expect("simple bind over LDAPS");
    s.close().await;
}

#[tokio::test]
async fn samba_refuses_simple_bind_without_tls() {
    let mut s = samba_session(TlsMode::None, 389).await;
    let err = s.bind(&samba_simple()).await.expect_err("Samba's default requires strong auth");
    assert_eq!(err.reason(), "StrongerAuthRequired", "{err}");
}

#[tokio::test]
async fn samba_wrong_password_is_invalid_credentials() {
    let mut s = samba_session(TlsMode::StartTls, 389).await;
    let creds =
        BindCredentials::Simple { bind_dn: env("LDAPSYNC_TEST_AD_BIND_DN"), password: Secret::new("not-the-password") };
    let err = s.bind(&creds).await.expect_err("wrong password");
    assert_eq!(err.reason(), "InvalidCredentials", "{err}");
    assert!(err.to_string().contains("data 52e"), "AD's sub-code is kept in the message: {err}");
    assert!(!err.to_string().contains("not-the-password"), "the error must not echo the password: {err}");
}

#[tokio::test]
async fn samba_certificate_from_another_ca_is_refused() {
    let t = transport(TlsMode::StartTls, Some("LDAPSYNC_TEST_OTHER_CA_FILE"));
    let err = match LdapSession::connect(&samba_endpoint(389), &t).await {
        Ok(_) => panic!("a certificate from an unrelated CA must not verify"),
        Err(e) => e,
    };
    assert_eq!(err.reason(), "TlsHandshakeFailed", "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

fn kerberos(keytab_var: &str, cache: &str) -> BindCredentials {
    let keytab = read_file(keytab_var);
    let cred = KerberosCredential::from_keytab(&keytab, None, cache).expect("credentials from the keytab");
    BindCredentials::Kerberos(Arc::new(cred))
}

#[tokio::test]
async fn samba_gssapi_with_sealing_on_plain_ldap() {
    let creds = kerberos("LDAPSYNC_TEST_KEYTAB", "peers-sealed");
    let t = transport(TlsMode::None, None);
    let mut s = LdapSession::open(&samba_endpoint(389), &t, &creds)
        .await
        .unwrap_or_else(|e| panic!("GSSAPI bind with the confidentiality layer: {e}"));
    assert!(!s.is_tls());
    assert_eq!(restricted_users_visible(&mut s).await, 1, "searches work over the sealed session, as svc-sync");
    // Large answers span many SASL buffers (ldap3's own layer loses data here).
    let n = s
        .search_paged(&env("LDAPSYNC_TEST_AD_BASE"), "(objectClass=group)", &["member"], 1000, |_| {})
        .await
        .expect("a large sealed read");
    assert!(n > 40, "{n} groups");
    s.close().await;
}

#[tokio::test]
async fn samba_gssapi_over_starttls_where_sasl_over_tls_is_allowed() {
    let creds = kerberos("LDAPSYNC_TEST_KEYTAB", "peers-sasl-tls");
    let t = transport(TlsMode::StartTls, Some("LDAPSYNC_TEST_CA_FILE"));
    let ep = ServerEndpoint {
        host: env("LDAPSYNC_TEST_AD_HOST"),
        addr: format!("{}:389", env("LDAPSYNC_TEST_AD_SASL_TLS_ADDR")).parse().expect("addr"),
    };
    let mut s = LdapSession::open(&ep, &t, &creds)
        .await
        .unwrap_or_else(|e| panic!("{}", unreachable("Samba (allow_sasl_over_tls)", e)));
    assert!(s.is_tls());
    assert_eq!(restricted_users_visible(&mut s).await, 1);
    // The default Samba refuses the same over TLS: it wants the SASL layer, not TLS.
    let err = match LdapSession::open(&samba_endpoint(389), &t, &creds).await {
        Ok(_) => panic!("Samba's default must refuse GSSAPI over TLS"),
        Err(e) => e,
    };
    assert_eq!(err.reason(), "StrongerAuthRequired", "{err}");
}

#[tokio::test]
async fn two_keytabs_in_one_process_keep_their_own_identities() {
    let a = kerberos("LDAPSYNC_TEST_KEYTAB", "peers-two-a");
    let b = kerberos("LDAPSYNC_TEST_KEYTAB2", "peers-two-b");
    let t = transport(TlsMode::None, None);
    let ep = samba_endpoint(389);
    let (ra, rb) = tokio::join!(LdapSession::open(&ep, &t, &a), LdapSession::open(&ep, &t, &b));
    let mut sa = ra.expect("bind with keytab 1");
    let mut sb = rb.expect("bind with keytab 2");
    // svc-sync2 is denied reading OU=Restricted: each session must show its own identity.
    let (va, vb) = tokio::join!(restricted_users_visible(&mut sa), restricted_users_visible(&mut sb));
    assert_eq!((va, vb), (1, 0), "session a must act as svc-sync, session b as svc-sync2");
}

#[test]
fn keytab_with_two_principals_is_refused_before_any_kerberos_call() {
    let keytab = read_file("LDAPSYNC_TEST_KEYTAB_TWO_PRINCIPALS");
    let err = KerberosCredential::from_keytab(&keytab, None, "peers-two-principals").expect_err("two principals");
    let msg = err.to_string();
    assert!(msg.contains("svc-sync@CORP.EXAMPLE.TEST") && msg.contains("svc-sync2@CORP.EXAMPLE.TEST"), "{msg}");
}

#[tokio::test]
async fn samba_paged_search_reads_every_seeded_user() {
    let mut s = samba_session(TlsMode::StartTls, 389).await;
    s.bind(&samba_simple()).await.expect("bind");
    let base = env("LDAPSYNC_TEST_AD_BASE");
    let mut names = Vec::new();
    let n = s
        .search_paged(&base, "(&(objectCategory=person)(objectClass=user))", &["sAMAccountName"], 200, |e| {
            names.extend(e.values("sAMAccountName").iter().cloned())
        })
        .await
        .expect("paged search over the referral-returning base");
    // 1510 bulk users + 8 staff/service users + Administrator + Guest + krbtgt.
    assert!(n > 1500, "only {n} users");
    assert_eq!(n as usize, names.len());
    for who in ["alice", "dave", "svc-sync", "bulk01509"] {
        assert!(names.iter().any(|x| x == who), "{who} missing");
    }
}

#[tokio::test]
async fn samba_search_of_a_missing_base_is_search_base_not_found() {
    let mut s = samba_session(TlsMode::StartTls, 389).await;
    s.bind(&samba_simple()).await.expect("bind");
    let base = format!("OU=NoSuchOU,{}", env("LDAPSYNC_TEST_AD_BASE"));
    let err = s.search_paged(&base, "(objectClass=user)", &["cn"], 100, |_| {}).await.expect_err("missing base");
    assert_eq!(err.reason(), "SearchBaseNotFound", "{err}");
}

#[tokio::test]
async fn both_slapd_servers_serve_the_generic_directory() {
    let base = env("LDAPSYNC_TEST_SLAPD_BASE");
    for ep in slapd_endpoints() {
        let mut s = LdapSession::connect(&ep, &transport(TlsMode::StartTls, Some("LDAPSYNC_TEST_CA_FILE")))
            .await
            .unwrap_or_else(|e| panic!("{}", unreachable(&format!("slapd at {}", ep.addr), e)));
        let creds = BindCredentials::Simple {
            bind_dn: env("LDAPSYNC_TEST_SLAPD_BIND_DN"),
            password: Secret::new(env("LDAPSYNC_TEST_SLAPD_PASSWORD")),
        };
        s.bind(&creds).await.expect("slapd simple bind");
        let mut mails = 0;
        let n = s
            .search_paged(&format!("ou=people,{base}"), "(objectClass=inetOrgPerson)", &["mail"], 7, |e| {
                mails += e.values("mail").len()
            })
            .await
            .expect("paged search on slapd");
        assert_eq!((n, mails), (50, 50), "seeded people on {}", ep.addr);
        let groups = s
            .search_paged(
                &base,
                "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))",
                &["cn"],
                100,
                |_| {},
            )
            .await
            .expect("groups");
        assert_eq!(groups, 4, "staff, everyone, admins, Team on {}", ep.addr);
    }
}

#[tokio::test]
async fn samba_answers_the_netlogon_ping_with_the_clients_site() {
    let dc: std::net::SocketAddr = format!("{}:389", env("LDAPSYNC_TEST_AD_ADDR")).parse().expect("address");
    let domain = env("LDAPSYNC_TEST_AD_DOMAIN");
    let answer = ldapsync::directory::cldap::ping(dc, &domain, Duration::from_secs(2)).await.expect("netlogon ping");
    assert_eq!(answer.dns_domain, domain);
    assert_eq!(answer.dc_host, env("LDAPSYNC_TEST_AD_HOST"));
    assert_eq!(answer.dc_site, "Default-First-Site-Name");
    // test-env.sh puts 127.0.0.0/8 in site hq (with dc1 as its DC).
    assert_eq!(answer.client_site, "hq");
    let nobody =
        ldapsync::directory::cldap::ping("127.0.0.1:9".parse().expect("address"), &domain, Duration::from_millis(300))
            .await;
    assert!(nobody.is_err(), "{nobody:?}");
}
