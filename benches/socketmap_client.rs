#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // a measuring tool
//! A native socketmap client for `scripts/bench.sh` (no interpreter in the measurement): the
//! latency of each request over one connection (p50, p99, max), then lookups per second with
//! CONNECTIONS clients at once, each on its own connection, as Postfix's smtpd processes are.
//!
//! `SOCKETMAP_ADDR=127.0.0.1:8391 KEYS=keys.txt CONNECTIONS=8 cargo bench --bench socketmap_client`

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn ask(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, request: &[u8], reply: &mut Vec<u8>) {
    stream.write_all(request).expect("send");
    reply.clear();
    reader.read_until(b':', reply).expect("reply length");
    let length: usize = std::str::from_utf8(&reply[..reply.len() - 1]).expect("digits").parse().expect("length");
    reply.resize(length + 1, 0);
    std::io::Read::read_exact(reader, reply).expect("reply");
}

fn connect(addr: &str) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    (stream, reader)
}

fn requests(keys: &[String]) -> Vec<Vec<u8>> {
    keys.iter()
        .map(|k| {
            let payload = format!("recipient {k}");
            format!("{}:{payload},", payload.len()).into_bytes()
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1e6
}

fn main() {
    let addr = std::env::var("SOCKETMAP_ADDR").unwrap_or_else(|_| "127.0.0.1:8391".into());
    let keys: Vec<String> = std::fs::read_to_string(std::env::var("KEYS").expect("KEYS: a file of keys"))
        .expect("read keys")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let connections: usize = std::env::var("CONNECTIONS").ok().and_then(|c| c.parse().ok()).unwrap_or(8);
    let requests = requests(&keys);
    let (mut stream, mut reader) = connect(&addr);
    let mut reply = Vec::new();
    for r in requests.iter().take(2000) {
        ask(&mut stream, &mut reader, r, &mut reply); // warm-up
    }
    let mut latencies = Vec::with_capacity(requests.len());
    let mut found = 0usize;
    for r in &requests {
        let started = Instant::now();
        ask(&mut stream, &mut reader, r, &mut reply);
        latencies.push(started.elapsed());
        found += usize::from(reply.starts_with(b"OK"));
    }
    latencies.sort();
    println!(
        "socketmap latency, one connection, native client: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs ({} keys, {found} found)",
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        requests.len()
    );
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..connections {
            let requests = &requests;
            let addr = &addr;
            scope.spawn(move || {
                let (mut stream, mut reader) = connect(addr);
                let mut reply = Vec::new();
                for r in requests {
                    ask(&mut stream, &mut reader, r, &mut reply);
                }
            });
        }
    });
    let took = started.elapsed().as_secs_f64();
    println!(
        "socketmap throughput, {connections} connections at once: {:.0} lookups/s ({} lookups in {took:.2} s)",
        (connections * requests.len()) as f64 / took,
        connections * requests.len()
    );
}
