//! The headers of a forward-auth request (nginx, Traefik, Envoy): X-Forwarded-For/-Host/-Method/
//! -Uri, X-Real-IP, the client certificate headers (URL-escaped PEM, Envoy's XFCC),
//! X-Tenant-ID, Authorization, X-Portcullis-Time and traceparent, then the original path.
//!
//! Input: a first byte of flags (bits 0-1: the proxy; bit 2: the peer is a trusted proxy;
//! bit 3: the peer is IPv6), then `METHOD URI` on the first line and `name: value` header lines.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use portcullis_server::edges::forward::{original_path, read_forwarded, Flavor};
use portcullis_server::tls::{client_cert_from_pem, PeerInfo};

fn trusted() -> Vec<IpNet> {
    ["10.0.0.0/8", "192.168.0.0/16", "::1/128", "fd00::/8"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let flavor = match flags & 3 {
        0 => Flavor::Nginx,
        1 => Flavor::Traefik,
        _ => Flavor::Envoy,
    };
    let ip = match (flags & 4 != 0, flags & 8 != 0) {
        (true, false) => IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        (true, true) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (false, false) => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
        (false, true) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)),
    };
    let peer = PeerInfo {
        addr: SocketAddr::new(ip, 40000),
        cert: None,
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let request_line = lines.next().unwrap_or_default();
    let (method, uri) = match request_line.iter().position(|&b| b == b' ') {
        Some(at) => (&request_line[..at], &request_line[at + 1..]),
        None => (request_line, &b"/"[..]),
    };
    let method = Method::from_bytes(method).unwrap_or(Method::GET);
    let uri = Uri::try_from(uri).unwrap_or_else(|_| Uri::from_static("/"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(at) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[at + 1..].strip_prefix(b" ").unwrap_or(&line[at + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..at]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    // Any header value taken as a certificate, as the proxies' headers are.
    for value in headers.values() {
        if let Ok(text) = value.to_str() {
            let _ = client_cert_from_pem(text);
        }
    }
    let trusted = trusted();
    if let Ok(forwarded) = read_forwarded(flavor, &trusted, 8192, &peer, &method, &uri, &headers) {
        let _ = original_path(&forwarded.uri);
    }
});
