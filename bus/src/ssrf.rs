//! The SSRF guard for every outbound URL (webhooks, Slack, Jira).
//!
//! A target must be `https`, carry no credentials, and its host — as the URL parser reads it
//! *and* every address it resolves to — must be a public unicast address. Refused:
//! - IPv4: `0.0.0.0/8`, `10/8`, `100.64/10` (CGNAT; also Alibaba's metadata address),
//!   `127/8`, `169.254/16` (link-local; the cloud metadata address `169.254.169.254`),
//!   `172.16/12`, `192.0.0/24`, `192.0.2/24`, `192.88.99/24`, `192.168/16`, `198.18/15`,
//!   `198.51.100/24`, `203.0.113/24`, multicast and reserved (`224/3`), broadcast;
//! - IPv6: unspecified, loopback, IPv4-mapped (`::ffff:0:0/96`) and IPv4-compatible
//!   (`::/96`), NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`), discard (`100::/64`), Teredo and
//!   benchmarking (`2001::/23` specials), documentation (`2001:db8::/32`), 6to4 (`2002::/16`),
//!   unique-local (`fc00::/7`, also AWS's `fd00:ec2::254`), link-local (`fe80::/10`),
//!   site-local (`fec0::/10`), multicast (`ff00::/8`);
//! - the well-known metadata host names (`metadata.google.internal`, `metadata.goog`).
//!
//! Integer host forms are read the way browsers and HTTP clients read them, by the WHATWG URL
//! parser: `http://2130706433`, `https://0x7f000001`, `https://0177.0.0.1` and
//! `https://127.1` are all `127.0.0.1` and so refused; IPv6 literals are compressed the same
//! way. A host name is checked by **resolving** it and checking every address; the request is
//! then **pinned** to the checked address (reqwest `resolve`), so a DNS answer that changes
//! between the check and the connection (DNS rebinding) is never used. Redirects are never
//! followed, and no proxy from the environment is used.
//!
//! `EVENTDESK_ALLOW_PRIVATE_TARGETS=true` ([`Guard::allow_private`]) lifts the address rules
//! and allows `http` (development and tests against a local receiver). Credentials in the URL
//! stay refused.

use reqwest::Url;
use reqwest::redirect::Policy;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a target URL is refused. The messages complete "the URL …" in a 422 naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an absolute `http(s)` URL.
    #[error("must be an absolute https URL")]
    Invalid,
    /// Too long.
    #[error("must be at most 2000 characters")]
    TooLong,
    /// Not `https` (and private targets are not allowed).
    #[error("must use https")]
    NotHttps,
    /// `user:password@` in the URL.
    #[error("must not contain credentials")]
    Credentials,
    /// The host is, or resolves to, a forbidden address.
    #[error("must not point to a private, loopback, link-local or metadata address ({0})")]
    Forbidden(String),
    /// The host name does not resolve.
    #[error("host does not resolve")]
    Unresolvable,
}

/// A URL that passed the guard, with the address to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTarget {
    /// The URL.
    pub url: Url,
    /// The checked address a host name resolved to (the connection is pinned to it); `None`
    /// for an IP literal, or when private targets are allowed.
    pub pinned: Option<SocketAddr>,
}

/// The host names of cloud metadata services (they resolve to refused addresses anyway).
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.goog"];

/// Longest URL accepted.
pub const MAX_URL_CHARS: usize = 2000;

/// Whether `ip` may never be the target of an outbound request.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                   // "this network"
        || a == 10                           // private
        || (a == 100 && (64..128).contains(&b)) // CGNAT (shared address space)
        || a == 127                          // loopback
        || (a == 169 && b == 254)            // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)    // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)    // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)  // 6to4 relay anycast
        || (a == 192 && b == 168)            // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)  // TEST-NET-3
        || a >= 224 // multicast, reserved, broadcast
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        // IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d: whatever they embed.
        || (s[0..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0))
        // IPv4/IPv6 translation (NAT64), well-known and local-use prefixes.
        || (s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0, 0, 0, 0] || s[2] == 1))
        // Discard-only.
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
        // 2001::/23: IETF protocol assignments (Teredo 2001::/32, benchmarking, ORCHID…).
        || (s[0] == 0x2001 && s[1] < 0x200)
        // Documentation.
        || (s[0] == 0x2001 && s[1] == 0xdb8)
        // 6to4 (embeds an IPv4 address, private ones included).
        || s[0] == 0x2002
        // Unique local fc00::/7 (AWS metadata fd00:ec2::254 included).
        || (s[0] & 0xfe00) == 0xfc00
        // Link-local fe80::/10 and the deprecated site-local fec0::/10.
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // Multicast.
        || (s[0] & 0xff00) == 0xff00
}

/// The host of a parsed URL: an address, or a name to resolve.
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Parses and checks the parts of `raw` that need no DNS. Returns the URL and its host.
fn parse(raw: &str, allow_private: bool) -> Result<(Url, Host), TargetError> {
    let raw = raw.trim();
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(TargetError::TooLong);
    }
    let url = Url::parse(raw).map_err(|_| TargetError::Invalid)?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(TargetError::Invalid);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    let host = match url.host() {
        Some(url::Host::Ipv4(ip)) => Host::Ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Host::Ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            // The WHATWG parser turns every numeric form into an address; a name whose last
            // label still looks numeric is something it did not understand: refuse it.
            let last = d.rsplit('.').next().unwrap_or("");
            if d.is_empty()
                || last.chars().all(|c| c.is_ascii_digit())
                || (last.starts_with("0x") && last[2..].chars().all(|c| c.is_ascii_hexdigit()))
            {
                return Err(TargetError::Invalid);
            }
            Host::Name(d)
        }
        None => return Err(TargetError::Invalid),
    };
    if !allow_private {
        if let Host::Ip(ip) = &host
            && is_forbidden(*ip)
        {
            return Err(TargetError::Forbidden(ip.to_string()));
        }
        if let Host::Name(n) = &host
            && METADATA_HOSTS.contains(&n.as_str())
        {
            return Err(TargetError::Forbidden(n.clone()));
        }
        if url.scheme() != "https" {
            return Err(TargetError::NotHttps);
        }
    }
    Ok((url, host))
}

/// Checks the addresses `name` resolved to: all of them must be allowed. Returns the one to
/// pin the connection to.
pub fn check_resolved(addrs: &[SocketAddr]) -> Result<SocketAddr, TargetError> {
    let first = addrs.first().copied().ok_or(TargetError::Unresolvable)?;
    if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
        return Err(TargetError::Forbidden(bad.ip().to_string()));
    }
    Ok(first)
}

/// How many pinned clients are kept.
const CLIENT_CACHE_MAX: usize = 512;
/// How long a pinned client is reused.
const CLIENT_TTL: Duration = Duration::from_secs(300);

type ClientKey = (String, Option<SocketAddr>);

/// The guard and the HTTP clients it builds. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    allow_private: bool,
    timeout: Duration,
    clients: Arc<Mutex<HashMap<ClientKey, (reqwest::Client, Instant)>>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Guard {
    /// A guard; `allow_private` lifts the address rules and allows `http`; every request it
    /// builds times out after `timeout`.
    pub fn new(allow_private: bool, timeout: Duration) -> Self {
        Self {
            allow_private,
            timeout,
            clients: Arc::default(),
        }
    }

    /// Whether private targets (and `http`) are allowed.
    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks `raw` without resolving it (the syntactic rules and literal addresses).
    pub fn check_syntax(&self, raw: &str) -> Result<Url, TargetError> {
        parse(raw, self.allow_private).map(|(u, _)| u)
    }

    /// Checks `raw` completely: syntax, literal address, and every address its host name
    /// resolves to (with the system resolver).
    pub async fn check(&self, raw: &str) -> Result<CheckedTarget, TargetError> {
        self.check_with(raw, |host, port| async move {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(|a| a.collect::<Vec<_>>())
        })
        .await
    }

    /// [`check`](Self::check) with an injected resolver (tests).
    pub async fn check_with<F, Fut>(
        &self,
        raw: &str,
        resolve: F,
    ) -> Result<CheckedTarget, TargetError>
    where
        F: FnOnce(String, u16) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<Vec<SocketAddr>>>,
    {
        let (url, host) = parse(raw, self.allow_private)?;
        let pinned = match host {
            Host::Ip(_) => None,
            Host::Name(_) if self.allow_private => None,
            Host::Name(name) => {
                let port = url.port_or_known_default().unwrap_or(443);
                let addrs = resolve(name, port)
                    .await
                    .map_err(|_| TargetError::Unresolvable)?;
                Some(check_resolved(&addrs)?)
            }
        };
        Ok(CheckedTarget { url, pinned })
    }

    /// A client for `target`: no redirects, no proxy, the guard's timeout, and the connection
    /// pinned to the checked address.
    pub fn client(&self, target: &CheckedTarget) -> Result<reqwest::Client, reqwest::Error> {
        let host = target.url.host_str().unwrap_or_default().to_owned();
        let key = (host.clone(), target.pinned);
        let now = Instant::now();
        if let Ok(map) = self.clients.lock()
            && let Some((c, at)) = map.get(&key)
            && now.duration_since(*at) < CLIENT_TTL
        {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder()
            .redirect(Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(3)))
            .user_agent(concat!(
                "eventdesk-integration-bus/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(addr) = target.pinned {
            b = b.resolve(&host, addr);
        }
        let client = b.build()?;
        if let Ok(mut map) = self.clients.lock() {
            if map.len() >= CLIENT_CACHE_MAX {
                map.retain(|_, (_, at)| now.duration_since(*at) < CLIENT_TTL);
                if map.len() >= CLIENT_CACHE_MAX {
                    map.clear();
                }
            }
            map.insert(key, (client.clone(), now));
        }
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn strict() -> Guard {
        Guard::new(false, Duration::from_secs(5))
    }

    fn resolver(
        ips: &'static [&'static str],
    ) -> impl FnOnce(String, u16) -> std::future::Ready<std::io::Result<Vec<SocketAddr>>> {
        move |_, port| {
            std::future::ready(Ok(ips
                .iter()
                .map(|i| SocketAddr::new(i.parse().unwrap(), port))
                .collect()))
        }
    }

    fn refused(url: &str) -> TargetError {
        let g = strict();
        let r = futures::executor::block_on(g.check_with(url, resolver(&["93.184.216.34"])));
        match r {
            Err(e) => e,
            Ok(t) => panic!("{url} was accepted: {t:?}"),
        }
    }

    #[test]
    fn loopback_private_link_local_and_metadata_literals_are_refused() {
        for url in [
            "https://127.0.0.1",
            "https://127.0.0.1:8443/hook",
            "https://[::1]",
            "https://[::1]:443/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1",
            "https://172.16.5.4",
            "https://172.31.255.255",
            "https://192.168.1.1",
            "https://100.64.0.1",
            "https://100.100.100.200",
            "https://0.0.0.0",
            "https://224.0.0.1",
            "https://255.255.255.255",
            "https://[fd00::1]",
            "https://[fd00:ec2::254]",
            "https://[fc00::1]",
            "https://[fe80::1]",
            "https://[fec0::1]",
            "https://[ff02::1]",
            "https://[::]",
            "https://[::ffff:127.0.0.1]",
            "https://[::ffff:7f00:1]",
            "https://[::ffff:8.8.8.8]",
            "https://[::127.0.0.1]",
            "https://[64:ff9b::a00:1]",
            "https://[2002:7f00:1::]",
            "https://[2001:db8::1]",
            "https://[2001::1]",
            "https://metadata.google.internal/computeMetadata/v1/",
        ] {
            assert!(
                matches!(refused(url), TargetError::Forbidden(_)),
                "{url}: {:?}",
                refused(url)
            );
        }
    }

    #[test]
    fn integer_octal_and_hex_host_forms_are_addresses() {
        for url in [
            "http://2130706433",
            "https://2130706433",
            "https://0x7f000001",
            "https://0x7f.0.0.1",
            "https://0177.0.0.1",
            "https://017700000001",
            "https://127.1",
            "https://127.0.1",
            "https://0x0a000001",
            "https://167772161",
            "https://2852039166", // 169.254.169.254
            "https://[0:0:0:0:0:ffff:7f00:0001]",
            "https://[0000::1]",
        ] {
            assert!(
                matches!(refused(url), TargetError::Forbidden(_)),
                "{url}: {:?}",
                refused(url)
            );
        }
    }

    #[test]
    fn http_credentials_and_junk_are_refused() {
        assert_eq!(refused("http://example.com/hook"), TargetError::NotHttps);
        assert_eq!(refused("ftp://example.com/"), TargetError::Invalid);
        assert_eq!(refused("file:///etc/passwd"), TargetError::Invalid);
        assert_eq!(refused("gopher://127.0.0.1/"), TargetError::Invalid);
        assert_eq!(refused("/relative"), TargetError::Invalid);
        assert_eq!(refused("not a url"), TargetError::Invalid);
        assert_eq!(
            refused("https://user:pw@example.com/"),
            TargetError::Credentials
        );
        assert_eq!(
            refused("https://user@example.com/"),
            TargetError::Credentials
        );
        assert_eq!(
            refused(&format!("https://example.com/{}", "a".repeat(2000))),
            TargetError::TooLong
        );
    }

    #[test]
    fn a_name_is_checked_by_what_it_resolves_to() {
        let g = strict();
        let check = |ips| {
            futures::executor::block_on(g.check_with("https://hooks.example.com/x", resolver(ips)))
        };
        // A public answer is accepted and pinned.
        let ok = check(&["93.184.216.34"]).unwrap();
        assert_eq!(ok.pinned, Some("93.184.216.34:443".parse().unwrap()));
        // Any private answer refuses the name (rebinding to an internal address).
        for ips in [
            &["127.0.0.1"][..],
            &["10.1.2.3"][..],
            &["169.254.169.254"][..],
            &["93.184.216.34", "192.168.0.10"][..],
            &["::1"][..],
            &["::ffff:10.0.0.1"][..],
            &["fd12:3456::1"][..],
        ] {
            assert!(
                matches!(check(ips), Err(TargetError::Forbidden(_))),
                "{ips:?}"
            );
        }
        assert_eq!(check(&[]), Err(TargetError::Unresolvable));
        let port = futures::executor::block_on(g.check_with(
            "https://hooks.example.com:8443/x",
            resolver(&["93.184.216.34"]),
        ))
        .unwrap();
        assert_eq!(port.pinned, Some("93.184.216.34:8443".parse().unwrap()));
    }

    #[tokio::test]
    async fn localhost_is_refused_by_its_resolved_address() {
        // No name rule: the system resolver says 127.0.0.1 / ::1, and that is refused.
        let r = strict().check("https://localhost:8443/hook").await;
        assert!(
            matches!(
                r,
                Err(TargetError::Forbidden(_) | TargetError::Unresolvable)
            ),
            "{r:?}"
        );
        let r = strict().check("https://localhost./hook").await;
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn public_addresses_pass() {
        let g = strict();
        for url in [
            "https://93.184.216.34/x",
            "https://8.8.8.8",
            "https://[2606:4700:4700::1111]/hook",
            "https://100.128.0.1",
            "https://172.32.0.1",
            "https://192.169.0.1",
        ] {
            let r = futures::executor::block_on(g.check_with(url, resolver(&[])));
            assert!(r.is_ok(), "{url}: {r:?}");
            assert_eq!(r.unwrap().pinned, None, "literal: nothing to pin");
        }
    }

    #[test]
    fn allow_private_lifts_the_address_rules_and_allows_http() {
        let g = Guard::new(true, Duration::from_secs(5));
        for url in [
            "http://127.0.0.1:8080/hook",
            "https://[::1]/x",
            "http://localhost:1234",
            "http://10.0.0.1",
        ] {
            let r = futures::executor::block_on(g.check_with(url, resolver(&["127.0.0.1"])));
            assert!(r.is_ok(), "{url}: {r:?}");
        }
        let r = futures::executor::block_on(g.check_with("http://u:p@127.0.0.1/", resolver(&[])));
        assert_eq!(r, Err(TargetError::Credentials));
    }

    #[test]
    fn clients_are_reused_per_pinned_address() {
        let g = strict();
        let t = CheckedTarget {
            url: Url::parse("https://hooks.example.com/x").unwrap(),
            pinned: Some("93.184.216.34:443".parse().unwrap()),
        };
        g.client(&t).unwrap();
        g.client(&t).unwrap();
        assert_eq!(g.clients.lock().unwrap().len(), 1);
    }
}
