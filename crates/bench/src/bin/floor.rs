//! The floor of the HTTP load benchmarks (`bench/http/run.sh`): a server that answers every
//! request with `204 No Content` and does nothing else, so that its throughput and latency
//! under a load are the most this machine's loopback HTTP allows a server of our make.
//! Portcullis's figures are reported as a fraction of the floor measured in the same run.
//!
//! Everything a decision does not need is the same as in `portcullis serve`, so that the
//! difference between the two is the service's own work (routing, identity, the decision, its
//! answer and the audit record):
//!
//! * the runtime: tokio's current-thread scheduler when the process may use one CPU only
//!   (`taskset -c N`, as the scripts pin servers), the multi-thread one otherwise, all drivers
//!   enabled;
//! * the listener: `TCP_NODELAY` on every accepted connection, a short pause when accepting
//!   fails (out of file descriptors) instead of spinning;
//! * the connection: one task per connection served by hyper-util's automatic HTTP/1 / HTTP/2
//!   builder with its default settings (keep-alive, no header timer), upgrades allowed and the
//!   HTTP/2 CONNECT protocol enabled, as `axum::serve` configures it.
//!
//! The request body, if any, is read to its end before answering, so that a keep-alive
//! connection stays usable whatever is sent.
//!
//! ```text
//! floor [--listen ADDRESS]     (default 127.0.0.1:9786; port 0 picks a free one)
//! ```
//!
//! It prints `floor listening on ADDRESS` once bound and runs until SIGINT or SIGTERM.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;

const DEFAULT_LISTEN: &str = "127.0.0.1:9786";
const USAGE: &str = "usage: floor [--listen ADDRESS]";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn parse_listen(mut arguments: impl Iterator<Item = String>) -> Result<SocketAddr> {
    let mut listen = None;
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--listen" => {
                let value = arguments
                    .next()
                    .with_context(|| format!("--listen needs an address\n{USAGE}"))?;
                listen = Some(value);
            }
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    let text = listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    text.parse()
        .with_context(|| format!("--listen {text:?} is not an address such as {DEFAULT_LISTEN}"))
}

fn run() -> Result<()> {
    let listen = parse_listen(std::env::args().skip(1))?;
    // The same choice as `portcullis serve` makes: confined to one CPU, the single-threaded
    // scheduler, without the work-stealing machinery a lone worker would still pay for.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|cpus| cpus.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener
            .local_addr()
            .context("the listener has no address")?;
        println!("floor listening on {bound}");
        tokio::select! {
            () = accept_forever(listener) => {}
            () = termination() => {}
        }
        Ok(())
    })
}

async fn accept_forever(listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                eprintln!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder.http2().enable_connect_protocol();
            let service = hyper::service::service_fn(answer);
            // A client closing its connection mid-request is not the floor's concern.
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    // An unread body would keep hyper from reusing the connection for the next request.
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Empty::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn termination() {
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn arguments(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|text| (*text).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn listens_on_the_default_address_without_arguments() {
        let expected: SocketAddr = DEFAULT_LISTEN.parse().unwrap();
        assert_eq!(parse_listen(arguments(&[])).unwrap(), expected);
    }

    #[test]
    fn takes_the_address_given() {
        let address = parse_listen(arguments(&["--listen", "127.0.0.1:0"])).unwrap();
        assert_eq!(address, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn refuses_bad_arguments_with_a_message_naming_them() {
        let missing = parse_listen(arguments(&["--listen"])).unwrap_err();
        assert!(missing.to_string().contains("--listen needs an address"));
        let unknown = parse_listen(arguments(&["--port", "80"])).unwrap_err();
        assert!(unknown.to_string().contains("\"--port\""));
        let bad = parse_listen(arguments(&["--listen", "localhost"])).unwrap_err();
        assert!(bad.to_string().contains("\"localhost\""));
    }
}
