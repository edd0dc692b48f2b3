//! The `floor` binary answers every request with `204 No Content` and no body, and keeps the
//! connection open for the next request, as the load benchmark's keep-alive clients need.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// The server process, stopped when the test ends (passing or not).
struct Floor {
    child: Child,
    address: String,
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(arguments: &[&str]) -> Result<Floor> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_floor"))
        .args(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the floor binary")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut floor = Floor {
        child,
        address: String::new(),
    };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    floor.address = line
        .trim()
        .strip_prefix("floor listening on ")
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_owned();
    Ok(floor)
}

/// Reads one response without a body: everything up to the blank line after the headers.
fn read_head(stream: &mut TcpStream) -> Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = stream.read(&mut byte)?;
        ensure!(
            read == 1,
            "the connection closed after {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    Ok(String::from_utf8(head)?)
}

fn expect_no_content(head: &str) -> Result<()> {
    ensure!(
        head.starts_with("HTTP/1.1 204 No Content\r\n"),
        "expected 204, got {head:?}"
    );
    let lower = head.to_ascii_lowercase();
    if lower.contains("content-length:") && !lower.contains("content-length: 0\r\n") {
        bail!("a 204 with a body length: {head:?}");
    }
    ensure!(
        !lower.contains("connection: close"),
        "the server closes the connection: {head:?}"
    );
    Ok(())
}

#[test]
fn answers_every_request_with_no_content_on_one_kept_alive_connection() -> Result<()> {
    let floor = start(&["--listen", "127.0.0.1:0"])?;
    let mut stream = TcpStream::connect(&floor.address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;

    // The forward-auth request of the benchmark, then a request with a body, then any path.
    let forward_auth = "GET /v1/authz/nginx HTTP/1.1\r\nHost: 127.0.0.1\r\n\
        X-Original-URI: /ops/apps/payments/logs/x\r\nX-Original-Method: GET\r\n\
        X-Forwarded-For: 172.16.3.4\r\nX-Forwarded-Host: ops.acme.example\r\n\
        X-Tenant-ID: acme\r\nAuthorization: Bearer a.b.c\r\n\r\n";
    let body = r#"{"tenant":"acme","principal":{"id":"bob"}}"#;
    let check = format!(
        "POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let other = "GET /anything/at/all?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    for request in [forward_auth, check.as_str(), other, forward_auth] {
        stream.write_all(request.as_bytes())?;
        expect_no_content(&read_head(&mut stream)?)?;
    }
    Ok(())
}

#[test]
fn answers_pipelined_requests_in_order() -> Result<()> {
    let floor = start(&["--listen", "127.0.0.1:0"])?;
    let mut stream = TcpStream::connect(&floor.address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    stream.write_all(request.repeat(3).as_bytes())?;
    for _ in 0..3 {
        expect_no_content(&read_head(&mut stream)?)?;
    }
    Ok(())
}

#[test]
fn refuses_an_address_it_cannot_read() -> Result<()> {
    let output = Command::new(env!("CARGO_BIN_EXE_floor"))
        .args(["--listen", "not-an-address"])
        .output()?;
    ensure!(!output.status.success(), "accepted a bad address");
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        stderr.contains("\"not-an-address\" is not an address"),
        "unclear message: {stderr}"
    );
    Ok(())
}
