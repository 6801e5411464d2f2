//! Outbound requests to URLs that users give us (webhooks; later imports by URL) must not
//! reach the service's own network: a callback to `http://169.254.169.254/` or `localhost`
//! would let any user probe or attack internal hosts (SSRF). The rule: resolve the host
//! ourselves, refuse if *any* address is not public, then connect only to the addresses we
//! checked (so a second DNS answer cannot swap in a private one), and never follow redirects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("not a valid URL: {0}")]
    Invalid(String),
    #[error("only http and https URLs are allowed")]
    Scheme,
    #[error("URLs with credentials are not allowed")]
    Credentials,
    #[error("the host {0} does not resolve")]
    Unresolved(String),
    #[error("the host {host} resolves to {addr}, a private, loopback or link-local address")]
    Private { host: String, addr: IpAddr },
}

impl GuardError {
    /// Stable code for problems and job records.
    pub fn code(&self) -> &'static str {
        match self {
            GuardError::Unresolved(_) => "destination-unresolved",
            GuardError::Private { .. } => "destination-refused",
            _ => "invalid-url",
        }
    }
}

/// A URL whose every address passed the check, with those addresses to connect to.
#[derive(Debug, Clone)]
pub struct CheckedUrl {
    pub url: Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

/// Parses and checks the URL's form (scheme, credentials) without resolving it.
pub fn parse(raw: &str) -> Result<Url, GuardError> {
    let url = Url::parse(raw).map_err(|e| GuardError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(GuardError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GuardError::Credentials);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(GuardError::Invalid("no host".into()));
    }
    Ok(url)
}

/// Parses, resolves and checks `raw`. With `allow_private`, private destinations pass (for
/// deployments whose receivers live on the internal network, and tests).
pub async fn check(raw: &str, allow_private: bool) -> Result<CheckedUrl, GuardError> {
    let url = parse(raw)?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    // Url keeps IPv6 literals bracketed; the resolver wants them bare.
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    // A resolver that does not answer must not hold a request (or a delivery) for long.
    let target = (bare.clone(), port);
    let lookup = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::lookup_host(target),
    )
    .await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(found)) => found.collect(),
        _ => return Err(GuardError::Unresolved(host)),
    };
    if addrs.is_empty() {
        return Err(GuardError::Unresolved(host));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(GuardError::Private {
            host,
            addr: bad.ip(),
        });
    }
    Ok(CheckedUrl {
        url,
        host: bare,
        addrs,
    })
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Carrier-grade NAT 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments 192.0.0.0/24, benchmarking 198.18.0.0/15.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        // Reserved 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32; NAT64 64:ff9b::/96 can reach private IPv4.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)
        // IPv4-compatible (deprecated) ::a.b.c.d.
        || ip.segments()[..6].iter().all(|s| *s == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = bad.parse().expect("test address");
            assert!(!is_public(ip), "{bad} must not count as public");
        }
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = good.parse().expect("test address");
            assert!(is_public(ip), "{good} is public");
        }
    }

    #[test]
    fn form_checks() {
        assert_eq!(parse("ftp://example.com/").unwrap_err(), GuardError::Scheme);
        assert_eq!(
            parse("https://user:pw@example.com/").unwrap_err(),
            GuardError::Credentials
        );
        assert!(matches!(parse("not a url"), Err(GuardError::Invalid(_))));
        assert!(parse("https://example.com/hook").is_ok());
    }

    #[tokio::test]
    async fn loopback_names_and_literals_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://localhost/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://2130706433/",
        ] {
            let err = check(url, false).await.expect_err(url);
            assert_eq!(err.code(), "destination-refused", "{url}: {err}");
        }
        let ok = check("http://127.0.0.1:9/hook", true)
            .await
            .expect("allowed");
        assert_eq!(ok.addrs.len(), 1);
    }
}
