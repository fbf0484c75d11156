#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Lookup-side benchmarks (run with `cargo bench --bench lookup`; `scripts/bench.sh` runs it too):
//! index build, address lookup and autocomplete latency over 100k users and 1k groups, snapshot
//! encode/decode (warm start) and size; and, when `LDAPSYNC_BENCH_LDAP` is set, the same address
//! lookups as live LDAP searches over one bound connection, for comparison.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldapsync::domain::codec;
use ldapsync::domain::index::Index;
use ldapsync::domain::snapshot::{ConnectionRef, DirObject, Memberships, ObjectKind, Snapshot};

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
            sid: None,
            primary_group_sid: None,
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
        sid: None,
        primary_group_sid: None,
    }));
    Snapshot {
        connection: ConnectionRef { namespace: "bench".into(), name: "volume".into(), uid: "bench".into() },
        domain: "volume.test".into(),
        search_base: "dc=volume,dc=test".into(),
        taken_at: 0,
        server: "bench".into(),
        objects: objects.into_iter().map(std::sync::Arc::new).collect(),
        memberships: Memberships::from_lists(
            (0..GROUPS)
                .map(|g| if g % 10 == 1 { vec![g - 1] } else { vec![] })
                .chain((0..USERS).map(|i| vec![i / per_group])),
        ),
        unresolved_members: 0,
        foreign_members: Vec::new(),
        sync_state: None,
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
    if let Ok(addr) = std::env::var("LDAPSYNC_BENCH_HTTP") {
        let users: u64 =
            std::env::var("LDAPSYNC_BENCH_HTTP_USERS").ok().and_then(|u| u.parse().ok()).unwrap_or(u64::from(USERS));
        for rate in [10_000u64, 20_000, 30_000] {
            fixed_rate_http(&addr, rate, "/v1/addresses", move |x| {
                format!("/v1/addresses/u{:07}@volume.example", x % users)
            });
        }
        for rate in [10_000u64, 20_000] {
            fixed_rate_http(&addr, rate, "/v1/autocomplete", move |x| {
                format!("/v1/autocomplete?prefix=u{:05}&limit=10", x % (users / 100))
            });
        }
    }
}

/// Sends requests (`path(random)`) at a fixed rate over 4 keep-alive connections for 10 s and
/// reports the latency from sending a request to having read its whole answer. Each connection is
/// an OS thread that sleeps until its next send time (high-resolution timers, tens of µs late at
/// most), so requests leave evenly spaced; a tokio timer (1 ms ticks) would send them in bursts of
/// 20 at 20k/s and measure its own queueing. A request whose time has passed leaves at once.
fn fixed_rate_http(addr: &str, rate: u64, name: &str, path: impl Fn(u64) -> String + Clone + Send + 'static) {
    use std::io::{BufRead, BufReader, Read, Write};
    const CONNECTIONS: u64 = 4;
    const SECONDS: u64 = 10;
    let start = Instant::now() + Duration::from_millis(100);
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let addr = addr.to_owned();
            let path = path.clone();
            std::thread::spawn(move || {
                let stream = std::net::TcpStream::connect(&addr).expect("connect to the lookup API");
                stream.set_nodelay(true).expect("nodelay");
                let mut tx = stream.try_clone().expect("clone the stream");
                let mut rx = BufReader::new(stream);
                let per_conn = rate / CONNECTIONS;
                let interval = Duration::from_nanos(1_000_000_000 / per_conn);
                // Connections take turns: connection c sends c/CONNECTIONS of an interval later.
                let offset = Duration::from_nanos(c * 1_000_000_000 / rate);
                let mut out = Vec::with_capacity((per_conn * SECONDS) as usize);
                let mut late = 0u64;
                let mut x = 0x2545_F491_4F6C_DD1D_u64 ^ c;
                let mut line = String::new();
                let mut body = Vec::new();
                for i in 0..per_conn * SECONDS {
                    let scheduled = start + interval * i as u32 + offset;
                    match scheduled.checked_duration_since(Instant::now()) {
                        Some(wait) => std::thread::sleep(wait),
                        None => late += 1,
                    }
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let req = format!("GET {} HTTP/1.1\r\nHost: bench\r\n\r\n", path(x));
                    let sent = Instant::now();
                    tx.write_all(req.as_bytes()).expect("send");
                    let mut length = 0usize;
                    loop {
                        line.clear();
                        rx.read_line(&mut line).expect("read header");
                        if line == "\r\n" || line.is_empty() {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().expect("content-length");
                        }
                    }
                    body.resize(length, 0);
                    rx.read_exact(&mut body).expect("read body");
                    out.push(sent.elapsed());
                }
                (out, late)
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut late = 0;
    for t in threads {
        let (out, l) = t.join().expect("connection thread");
        samples.extend(out);
        late += l;
    }
    let achieved = samples.len() as f64 / SECONDS as f64;
    let late_share = 100.0 * late as f64 / samples.len().max(1) as f64;
    report(&format!("HTTP {name} at {rate}/s ({achieved:.0}/s, {late_share:.1} % sent late)"), samples);
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
