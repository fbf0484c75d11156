//! Lookup-side benchmarks (run with `cargo bench --bench lookup`; `scripts/bench.sh` runs it too):
//! index build, address lookup and autocomplete latency over 100k users and 1k groups, snapshot
//! encode/decode (warm start) and size; and, when `LDAPSYNC_BENCH_LDAP` is set, the same address
//! lookups as live LDAP searches over one bound connection, for comparison.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldapsync::domain::codec;
use ldapsync::domain::index::Index;
use ldapsync::domain::snapshot::{ConnectionRef, DirObject, ObjectKind, Snapshot};

const USERS: u32 = 100_000;
const GROUPS: u32 = 1_000;

fn snapshot() -> Snapshot {
    let per_group = USERS / GROUPS;
    let mut objects: Vec<DirObject> = (0..GROUPS)
        .map(|g| DirObject {
            kind: ObjectKind::Group,
            dn: format!("cn=g{g:05},ou=groups,dc=volume,dc=test"),
            id: format!("group-{g}"),
            account_name: Some(format!("g{g:05}")),
            principal_name: None,
            display_name: Some(format!("Group {g}")),
            disabled: false,
            primary_address: Some(format!("g{g:05}@volume.example")),
            addresses: vec![format!("g{g:05}@volume.example")],
            member_of: if g % 10 == 1 { vec![g - 1] } else { vec![] },
        })
        .collect();
    objects.extend((0..USERS).map(|i| DirObject {
        kind: ObjectKind::User,
        dn: format!("uid=u{i:07},ou=people,dc=volume,dc=test"),
        id: format!("user-{i}"),
        account_name: Some(format!("u{i:07}")),
        principal_name: None,
        display_name: Some(format!("User Number {i}")),
        disabled: false,
        primary_address: Some(format!("u{i:07}@volume.example")),
        addresses: vec![format!("u{i:07}@volume.example")],
        member_of: vec![i / per_group],
    }));
    Snapshot {
        connection: ConnectionRef { namespace: "bench".into(), name: "volume".into(), uid: "bench".into() },
        domain: "volume.test".into(),
        search_base: "dc=volume,dc=test".into(),
        taken_at: 0,
        server: "bench".into(),
        objects,
        unresolved_members: 0,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "{name:<34} p50 {:>9.2} µs   p99 {:>9.2} µs",
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6
    );
}

fn addresses(n: usize) -> Vec<String> {
    // A fixed pseudo-random walk over the users, the same in every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("u{:07}@volume.example", x % u64::from(USERS))
        })
        .collect()
}

fn main() {
    let snap = snapshot();
    let t = Instant::now();
    let encoded = codec::encode(&snap).expect("encode");
    let encode = t.elapsed();
    let t = Instant::now();
    let decoded = codec::decode(&encoded.bytes).expect("decode");
    let decode = t.elapsed();
    let t = Instant::now();
    let index = Index::build(vec![Arc::new(decoded)]);
    let build = t.elapsed();
    let addresses_total = snap.counts().addresses;
    println!(
        "snapshot: {USERS} users, {GROUPS} groups, {} bytes ({:.1} bytes/address)",
        encoded.bytes.len(),
        encoded.bytes.len() as f64 / addresses_total as f64
    );
    println!(
        "encode {:.0} ms, decode {:.0} ms, index build {:.0} ms -> warm start {:.0} ms",
        encode.as_secs_f64() * 1e3,
        decode.as_secs_f64() * 1e3,
        build.as_secs_f64() * 1e3,
        (decode + build).as_secs_f64() * 1e3
    );

    let queries = addresses(200_000);
    let t = Instant::now();
    for q in &queries {
        black_box(index.has_address(black_box(q)));
    }
    println!(
        "index has_address                   mean {:.3} µs",
        t.elapsed().as_secs_f64() * 1e6 / queries.len() as f64
    );
    let t = Instant::now();
    for q in &queries {
        black_box(index.lookup_address(black_box(q)));
    }
    println!(
        "index lookup_address (with groups)  mean {:.3} µs",
        t.elapsed().as_secs_f64() * 1e6 / queries.len() as f64
    );
    let samples: Vec<Duration> = queries[..50_000]
        .iter()
        .map(|q| {
            let t = Instant::now();
            black_box(index.lookup_address(q));
            t.elapsed()
        })
        .collect();
    report("index lookup_address", samples);
    let prefixes: Vec<String> = queries[..50_000].iter().map(|q| q[..6].to_owned()).collect();
    let samples: Vec<Duration> = prefixes
        .iter()
        .map(|p| {
            let t = Instant::now();
            black_box(index.autocomplete(p, 10));
            t.elapsed()
        })
        .collect();
    report("index autocomplete (limit 10)", samples);

    if let Ok(spec) = std::env::var("LDAPSYNC_BENCH_LDAP") {
        live_ldap(&spec, &queries[..20_000]);
    }
}

/// `LDAPSYNC_BENCH_LDAP=host:port|base|bindDN|password|ca.pem`: one StartTLS connection, one
/// search per address, one at a time.
fn live_ldap(spec: &str, queries: &[String]) {
    use ldapsync::api::TlsMode;
    use ldapsync::directory::ldap::{BindCredentials, LdapSession, ServerEndpoint, TransportSettings};
    let parts: Vec<&str> = spec.split('|').collect();
    let [addr, base, bind_dn, password, ca] = parts[..] else {
        panic!("LDAPSYNC_BENCH_LDAP needs 5 |-separated parts")
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let addr: std::net::SocketAddr = addr.parse().expect("host:port");
        let ca = std::fs::read(ca).expect("CA file");
        let transport = TransportSettings {
            mode: TlsMode::StartTls,
            tls: Some(ldapsync::directory::tls::client_config(Some(&ca), false).expect("tls")),
            server_name: None,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
        };
        let creds =
            BindCredentials::Simple { bind_dn: bind_dn.into(), password: ldapsync::secret::Secret::new(password) };
        let endpoint = ServerEndpoint { host: addr.ip().to_string(), addr };
        let mut session = LdapSession::open(&endpoint, &transport, &creds).await.expect("bind");
        let mut samples = Vec::with_capacity(queries.len());
        for q in queries {
            let t = Instant::now();
            let n = session
                .search_paged(
                    base,
                    &format!("(mail={})", ldap3::ldap_escape(q)),
                    &["entryUUID", "cn", "mail"],
                    10,
                    |_| {},
                )
                .await
                .expect("search");
            samples.push(t.elapsed());
            assert_eq!(n, 1, "{q}");
        }
        report("live LDAP search per address", samples);
    });
}
