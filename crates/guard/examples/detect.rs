//! The injection stage's verdicts on requests read from standard input, at each sensitivity:
//! the Portcullis side of the detection comparison in `bench/gateway/detect.sh`.
//!
//! ```text
//! cargo run -p portcullis-guard --example detect [-- --post] [--path /search] < requests.txt
//! ```
//!
//! Each input line is one request's parameters, URL-encoded as they travel: a query string
//! (`q=%27+OR+1%3D1--&page=2`), sent as `GET PATH?LINE`, or with `--post` a form body, sent as
//! `POST PATH` with `Content-Type: application/x-www-form-urlencoded`. Being URL-encoded, a
//! line never holds a newline of the value itself. The request goes through
//! [`InjectionCheck`] exactly as the stage runs in front of an application (parameters parsed
//! by `params_of`, then `Injection::inspect`) with the default configuration at sensitivity
//! `low`, `medium` and `high`.
//!
//! Each output line answers the input line of the same number with three tab-separated
//! verdicts, for `low`, `medium` and `high`: `pass`, or the refusal's code and message
//! (`sql_injection: `q` looks like SQL injection (libinjection fingerprint `s&sos`)`).

use std::error::Error;
use std::io::{BufRead, BufWriter, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, header};
use portcullis_guard::{Check, Injection, InjectionCheck, RawInjection, Sensitivity};

const USAGE: &str = "usage: detect [--post] [--path PATH] < lines";

fn main() -> Result<(), Box<dyn Error>> {
    let mut post = false;
    let mut path = String::from("/search");
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--post" => post = true,
            "--path" => path = arguments.next().ok_or(USAGE)?,
            _ => return Err(format!("unknown argument `{argument}`\n{USAGE}").into()),
        }
    }

    let checks = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High]
        .into_iter()
        .map(|sensitivity| {
            let raw = RawInjection {
                sensitivity,
                ..RawInjection::default()
            };
            Ok(InjectionCheck::new(Arc::new(Injection::try_from(raw)?)))
        })
        .collect::<Result<Vec<_>, Box<dyn Error>>>()?;

    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = line?;
        let mut verdicts = Vec::with_capacity(checks.len());
        for check in &checks {
            let request = if post {
                Request::builder()
                    .method(Method::POST)
                    .uri(path.as_str())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(line.clone()))?
            } else {
                Request::builder()
                    .method(Method::GET)
                    .uri(format!("{path}?{line}"))
                    .body(Body::empty())?
            };
            let verdict = match runtime.block_on(check.check(request)) {
                Ok(_) => String::from("pass"),
                Err(refusal) => format!("{}: {}", refusal.code, refusal.message)
                    .replace(['\t', '\n', '\r'], " "),
            };
            verdicts.push(verdict);
        }
        writeln!(out, "{}", verdicts.join("\t"))?;
    }
    out.flush()?;
    Ok(())
}
