//! Domain controller order from DNS SRV records (RFC 2782), with the randomness injected.

/// One SRV answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Host name of the server, without the trailing dot.
    pub host: String,
}

/// The SRV names to ask, in order: the site-specific one first when a site is given.
pub fn srv_names(domain: &str, site: Option<&str>) -> Vec<String> {
    site.map(|s| site_srv_name(domain, s)).into_iter().chain([domain_srv_name(domain)]).collect()
}

/// The record of every DC of the domain.
pub fn domain_srv_name(domain: &str) -> String {
    format!("_ldap._tcp.{}", domain.trim_end_matches('.'))
}

/// The record of the DCs that serve AD site `site`.
pub fn site_srv_name(domain: &str, site: &str) -> String {
    format!("_ldap._tcp.{site}._sites.dc._msdcs.{}", domain.trim_end_matches('.'))
}

/// The servers of every answered SRV name, in the order of the names (the site's first), each
/// server once: as the DC locator does, a site whose DCs are all down falls back to the other DCs
/// of the domain.
pub fn in_name_order(answers: Vec<Vec<SrvTarget>>) -> Vec<SrvTarget> {
    let mut out: Vec<SrvTarget> = Vec::new();
    for target in answers.into_iter().flatten() {
        if !out.iter().any(|t| t.host.eq_ignore_ascii_case(&target.host) && t.port == target.port) {
            out.push(target);
        }
    }
    out
}

/// Orders targets as RFC 2782 says: lowest priority first; within a priority, a weighted random
/// order where zero-weight targets get a small chance only. `pick(total)` must return a uniformly
/// random integer in `0..=total`. A target of `.` means "no service" and is dropped.
pub fn order_targets(mut targets: Vec<SrvTarget>, mut pick: impl FnMut(u64) -> u64) -> Vec<SrvTarget> {
    targets.retain(|t| !t.host.is_empty() && t.host != ".");
    // Stable sort keeps answer order; zero weights first within a priority, as the RFC's algorithm asks.
    targets.sort_by_key(|t| (t.priority, t.weight != 0));
    let mut ordered = Vec::with_capacity(targets.len());
    let mut rest = targets.as_slice();
    while let Some(first) = rest.first() {
        let same = rest.iter().take_while(|t| t.priority == first.priority).count();
        let mut group: Vec<SrvTarget> = rest[..same].to_vec();
        rest = &rest[same..];
        while !group.is_empty() {
            let total: u64 = group.iter().map(|t| u64::from(t.weight)).sum();
            let chosen = pick(total).min(total);
            let mut running = 0u64;
            let index = group
                .iter()
                .position(|t| {
                    running += u64::from(t.weight);
                    running >= chosen
                })
                .unwrap_or(group.len() - 1);
            ordered.push(group.remove(index));
        }
    }
    ordered
}

/// A server as `host:port`, `host`, `IP`, `IP:port` or `[IPv6]:port`; `default_port` fills a missing port.
pub fn parse_host_port(value: &str, default_port: u16) -> Result<(String, u16), String> {
    let v = value.trim();
    if v.is_empty() {
        return Err("empty server".into());
    }
    if let Ok(addr) = v.parse::<std::net::SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    if v.parse::<std::net::IpAddr>().is_ok() {
        return Ok((v.to_owned(), default_port));
    }
    match v.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| format!("{value:?}: the port is not a number"))?;
            if host.is_empty() || port == 0 {
                return Err(format!("{value:?}: expected host:port"));
            }
            Ok((host.to_owned(), port))
        }
        None => Ok((v.to_owned(), default_port)),
    }
}

/// `host:port` as [`parse_host_port`] reads it back (`[v6]:port` for IPv6 addresses): how a
/// server is named in change-tracking state.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_reads_back() {
        for (host, port) in [("dc1.corp.test", 389), ("127.0.0.1", 636), ("::1", 389), ("fd00::2", 3268)] {
            assert_eq!(parse_host_port(&host_port(host, port), 1), Ok((host.to_owned(), port)));
        }
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(parse_host_port("dc1.corp:3268", 389), Ok(("dc1.corp".into(), 3268)));
        assert_eq!(parse_host_port("dc1.corp", 636), Ok(("dc1.corp".into(), 636)));
        assert_eq!(parse_host_port("127.0.0.2", 389), Ok(("127.0.0.2".into(), 389)));
        assert_eq!(parse_host_port("[::1]:1389", 389), Ok(("::1".into(), 1389)));
        assert!(parse_host_port("dc1:x", 389).is_err());
        assert!(parse_host_port(":389", 389).is_err());
        assert!(parse_host_port(" ", 389).is_err());
    }

    fn t(priority: u16, weight: u16, host: &str) -> SrvTarget {
        SrvTarget { priority, weight, port: 389, host: host.to_owned() }
    }

    fn hosts(v: &[SrvTarget]) -> Vec<&str> {
        v.iter().map(|t| t.host.as_str()).collect()
    }

    #[test]
    fn a_site_comes_first_then_the_rest_of_the_domain_each_server_once() {
        let t = |host: &str, priority| SrvTarget { priority, weight: 0, port: 389, host: host.into() };
        let site = vec![t("dc2.corp", 0)];
        let domain = vec![t("dc1.corp", 10), t("DC2.corp", 10), t("dc3.corp", 20)];
        let hosts: Vec<String> = in_name_order(vec![site, domain]).into_iter().map(|t| t.host).collect();
        assert_eq!(hosts, ["dc2.corp", "dc1.corp", "dc3.corp"]);
    }

    #[test]
    fn names_with_and_without_site() {
        assert_eq!(srv_names("corp.example.com.", None), ["_ldap._tcp.corp.example.com"]);
        assert_eq!(
            srv_names("corp.example.com", Some("Berlin")),
            ["_ldap._tcp.Berlin._sites.dc._msdcs.corp.example.com", "_ldap._tcp.corp.example.com"]
        );
    }

    #[test]
    fn lower_priority_always_comes_first() {
        let targets = vec![t(20, 100, "b"), t(10, 1, "a"), t(30, 0, "c"), t(20, 0, "d")];
        for r in [0, 1, 50, 1000] {
            let o = order_targets(targets.clone(), |max| r.min(max));
            assert_eq!(o[0].host, "a");
            assert_eq!(o.last().map(|t| t.host.as_str()), Some("c"));
        }
    }

    #[test]
    fn weights_split_first_choice_in_proportion() {
        let targets = vec![t(0, 70, "heavy"), t(0, 30, "light")];
        let mut heavy_first = 0;
        for r in 0..=100u64 {
            let o = order_targets(targets.clone(), |max| r.min(max));
            if o[0].host == "heavy" {
                heavy_first += 1;
            }
        }
        // Draws 0..=70 land on the first target (71 of 101 values).
        assert_eq!(heavy_first, 71);
    }

    #[test]
    fn zero_weight_targets_are_picked_only_on_a_zero_draw() {
        let targets = vec![t(0, 10, "weighted"), t(0, 0, "zero")];
        assert_eq!(hosts(&order_targets(targets.clone(), |_| 0)), ["zero", "weighted"]);
        assert_eq!(hosts(&order_targets(targets.clone(), |max| max)), ["weighted", "zero"]);
        let all_zero = vec![t(0, 0, "x"), t(0, 0, "y")];
        assert_eq!(hosts(&order_targets(all_zero, |max| max)), ["x", "y"]);
    }

    #[test]
    fn every_target_appears_once_and_dot_means_none() {
        let targets = vec![t(0, 5, "a"), t(0, 5, "b"), t(1, 5, "c"), t(0, 0, ".")];
        let mut seed = 7u64;
        for _ in 0..50 {
            let o = order_targets(targets.clone(), |max| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 33) % (max + 1)
            });
            let mut h = hosts(&o);
            assert_eq!(h.last(), Some(&"c"));
            h.sort();
            assert_eq!(h, ["a", "b", "c"]);
        }
    }
}
