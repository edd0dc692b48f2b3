//! The documentation's examples, checked against the repository and the binary: README.md and
//! docs/*.md link only to files and headings that exist, the bundle-format page's example files
//! load as bundle files, and the command-line page names only subcommands the binary has.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed setup step must fail the test"
)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis_policy::{Code, LoadOptions, SourceFile, compile_files};

/// The repository's root folder.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A documentation file: its path relative to the root (for messages) and its text.
struct Page {
    name: String,
    path: PathBuf,
    text: String,
}

fn page(name: &str) -> Page {
    let path = root().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {name}: {error}"));
    Page {
        name: name.to_owned(),
        path,
        text,
    }
}

/// README.md and every docs/*.md, in name order.
fn pages() -> Vec<Page> {
    let mut names = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ holds no .md page");
    names.extend(docs);
    names.iter().map(|name| page(name)).collect()
}

/// One line of a page: its 1-based number, its text, and whether it is inside a fenced block.
struct Line<'a> {
    number: usize,
    text: &'a str,
    fenced: bool,
}

/// The page's lines; the fence lines themselves count as fenced.
fn lines(text: &str) -> Vec<Line<'_>> {
    let mut fenced = false;
    text.lines()
        .enumerate()
        .map(|(index, text)| {
            let fence = text.trim_start().starts_with("```");
            let line = Line {
                number: index + 1,
                text,
                fenced: fenced || fence,
            };
            if fence {
                fenced = !fenced;
            }
            line
        })
        .collect()
}

/// A fenced code block.
struct Block<'a> {
    /// The info string after the opening fence (`yaml`, `sh`, …).
    info: &'a str,
    /// Line number of the opening fence.
    fence_line: usize,
    /// The nearest non-blank line before the fence, with its number.
    before: Option<(usize, &'a str)>,
    /// The content lines, with their numbers.
    body: Vec<(usize, &'a str)>,
}

fn blocks(text: &str) -> Vec<Block<'_>> {
    let all: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut index = 0;
    while index < all.len() {
        let Some(info) = all[index].trim_start().strip_prefix("```") else {
            index += 1;
            continue;
        };
        let before = all[..index]
            .iter()
            .enumerate()
            .rev()
            .find(|(_, line)| !line.trim().is_empty())
            .map(|(at, line)| (at + 1, line.trim()));
        let mut block = Block {
            info: info.trim(),
            fence_line: index + 1,
            before,
            body: Vec::new(),
        };
        index += 1;
        while index < all.len() && !all[index].trim_start().starts_with("```") {
            block.body.push((index + 1, all[index]));
            index += 1;
        }
        index += 1;
        found.push(block);
    }
    found
}

/// The line with its code spans (`` `…` ``, ``` `` … `` ```) removed; a backtick run without a
/// closing run of the same length on the line is kept as text.
fn without_code_spans(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut kept = String::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'`' {
            let next = line[index..].find('`').map_or(line.len(), |at| index + at);
            kept.push_str(&line[index..next]);
            index = next;
            continue;
        }
        let run = bytes[index..].iter().take_while(|&&b| b == b'`').count();
        let mut search = index + run;
        let mut close = None;
        while let Some(at) = line[search..].find('`') {
            let start = search + at;
            let length = bytes[start..].iter().take_while(|&&b| b == b'`').count();
            if length == run {
                close = Some(start + length);
                break;
            }
            search = start + length;
        }
        match close {
            Some(end) => index = end,
            None => {
                kept.push_str(&line[index..index + run]);
                index += run;
            }
        }
    }
    kept
}

/// The code spans of a line, without their backticks.
fn code_spans(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut spans = Vec::new();
    let mut index = 0;
    while let Some(at) = line[index..].find('`') {
        let start = index + at;
        let run = bytes[start..].iter().take_while(|&&b| b == b'`').count();
        let open_end = start + run;
        let mut search = open_end;
        let mut close = None;
        while let Some(at) = line[search..].find('`') {
            let begin = search + at;
            let length = bytes[begin..].iter().take_while(|&&b| b == b'`').count();
            if length == run {
                close = Some((begin, begin + length));
                break;
            }
            search = begin + length;
        }
        match close {
            Some((begin, end)) => {
                spans.push(line[open_end..begin].trim());
                index = end;
            }
            None => index = open_end,
        }
    }
    spans
}

/// The targets of the inline links `[text](target)` on a line (code spans excluded).
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after
            .find(|c: char| c == ')' || c.is_whitespace())
            .unwrap_or(after.len());
        let target = after[..end].trim_start_matches('<').trim_end_matches('>');
        if !target.is_empty() {
            targets.push(target.to_owned());
        }
        rest = &after[end..];
    }
    targets
}

/// GitHub's anchor for a heading's text: lowercase, punctuation other than `-` and `_`
/// dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings; a repeated heading gets `-1`, `-2`, … as on GitHub.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = HashSet::new();
    for line in lines(text).into_iter().filter(|line| !line.fenced) {
        let hashes = line.text.bytes().take_while(|&b| b == b'#').count();
        if !(1..=6).contains(&hashes) || !line.text[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line.text[hashes..]);
        let count = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    anchors
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug(" `tenant.yaml`"), "tenantyaml");
    assert_eq!(slug(" Relationships (ReBAC)"), "relationships-rebac");
    assert_eq!(
        slug(" Masking (applied on the caller's thread)"),
        "masking-applied-on-the-callers-thread"
    );
    assert_eq!(slug(" `portcullis tenant`"), "portcullis-tenant");
    assert_eq!(
        slug(" In the store (`audit_log`)"),
        "in-the-store-audit_log"
    );
    let found = anchors("# A\n```\n# not a heading\n```\n## A\n### B-c\n");
    let expected: HashSet<String> = ["a", "a-1", "b-c"].map(String::from).into();
    assert_eq!(found, expected);
    assert_eq!(
        link_targets("[`x`](a.md#b) and `[no](c.md)` then [y](<d e>)"),
        ["a.md#b", "d"]
    );
}

#[test]
fn every_relative_link_and_anchor_exists() {
    let pages = pages();
    let mut anchors_of: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    let mut problems = String::new();
    let mut checked = 0;
    for page in &pages {
        let folder = page.path.parent().unwrap();
        for line in lines(&page.text).into_iter().filter(|line| !line.fenced) {
            for target in link_targets(line.text) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let at = format!("{}:{}: link `{target}`", page.name, line.number);
                let (file, anchor) = match target.split_once('#') {
                    Some((file, anchor)) => (file, Some(anchor)),
                    None => (target.as_str(), None),
                };
                let file = if file.is_empty() {
                    page.path.clone()
                } else {
                    folder.join(file)
                };
                if !file.exists() {
                    writeln!(problems, "{at}: {} does not exist", file.display()).unwrap();
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if file.extension().is_none_or(|extension| extension != "md") {
                    writeln!(problems, "{at}: an anchor into a file that is not Markdown").unwrap();
                    continue;
                }
                let file = file.canonicalize().unwrap();
                let known = anchors_of.entry(file.clone()).or_insert_with(|| {
                    anchors(&std::fs::read_to_string(&file).unwrap_or_default())
                });
                if !known.contains(anchor) {
                    let mut headings: Vec<&String> = known.iter().collect();
                    headings.sort();
                    writeln!(
                        problems,
                        "{at}: {} has no heading with the anchor `#{anchor}` (anchors: {headings:?})",
                        file.display()
                    )
                    .unwrap();
                }
            }
        }
    }
    assert!(problems.is_empty(), "broken links:\n{problems}");
    assert!(
        checked > 0,
        "no relative link was found in the documentation"
    );
}

#[test]
fn readme_and_index_link_every_page() {
    let docs: BTreeSet<String> = pages()
        .into_iter()
        .filter_map(|page| page.name.strip_prefix("docs/").map(str::to_owned))
        .filter(|name| name != "README.md")
        .collect();
    for (index, prefix) in [("README.md", "docs/"), ("docs/README.md", "")] {
        let index = page(index);
        let linked: BTreeSet<String> = lines(&index.text)
            .into_iter()
            .filter(|line| !line.fenced)
            .flat_map(|line| link_targets(line.text))
            .filter_map(|target| {
                let file = target.split('#').next().unwrap_or_default();
                file.strip_prefix(prefix).map(str::to_owned)
            })
            .collect();
        let missing: Vec<&String> = docs.difference(&linked).collect();
        assert!(
            missing.is_empty(),
            "{} does not link these pages of docs/: {missing:?}",
            index.name
        );
    }
}

#[test]
fn readme_quick_start_has_the_two_commands() {
    let readme = page("README.md");
    let start = readme
        .text
        .find("\n## Quick start\n")
        .expect("README.md has no `## Quick start` section");
    let section = &readme.text[start + 1..];
    let section = &section[..section[1..]
        .find("\n## ")
        .map_or(section.len(), |at| at + 1)];
    let commands: Vec<Vec<&str>> = blocks(section)
        .iter()
        .map(|block| block.body.iter().map(|(_, line)| line.trim()).collect())
        .collect();
    assert_eq!(
        commands,
        [["cargo run --release -- serve"], ["scripts/test"]],
        "README.md's quick start holds exactly two commands: run the service, run every test"
    );
    assert!(
        root().join("scripts/test").is_file(),
        "the quick start runs scripts/test, which does not exist"
    );
    let output = help(&["serve".to_owned()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A minimal `tenant.yaml` for examples that show another file of a bundle.
const TENANT: &str = "tenant: docs-example\n";

#[test]
fn bundle_format_examples_load_as_bundle_files() {
    let page = page("docs/bundle-format.md");
    let mut problems = String::new();
    let mut examples = 0;
    for block in blocks(&page.text) {
        let at = format!("{}:{}", page.name, block.fence_line);
        let marker = block
            .before
            .and_then(|(_, line)| line.strip_prefix("<!--"))
            .and_then(|line| line.strip_suffix("-->"))
            .map(str::trim);
        if block.info != "yaml" {
            if marker.is_some_and(|marker| marker.starts_with("example:")) {
                writeln!(
                    problems,
                    "{at}: an example marker before a `{}` block; examples are ```yaml blocks",
                    block.info
                )
                .unwrap();
            }
            continue;
        }
        let name = match marker {
            Some("fragment") => continue,
            Some(marker) if marker.starts_with("example:") => {
                marker["example:".len()..].trim().to_owned()
            }
            _ => {
                writeln!(
                    problems,
                    "{at}: a ```yaml block needs `<!-- example: FILE.yaml -->` right before it \
                     (a complete bundle file, checked here) or `<!-- fragment -->` (part of a \
                     file, not checked)"
                )
                .unwrap();
                continue;
            }
        };
        examples += 1;
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) || name.contains('/') {
            writeln!(
                problems,
                "{at}: the example's file name `{name}` is not a bundle file name (NAME.yaml)"
            )
            .unwrap();
            continue;
        }
        let first_line = block
            .body
            .first()
            .map_or(block.fence_line + 1, |line| line.0);
        let text: String = block
            .body
            .iter()
            .map(|(_, line)| format!("{line}\n"))
            .collect();
        if let Err(error) = serde_saphyr::from_str::<serde_json::Value>(&text) {
            writeln!(problems, "{at}: the example {name} is not YAML: {error}").unwrap();
            continue;
        }
        // The example is one file of a bundle: references to what other files define (roles,
        // strategies, principals) cannot resolve, anything else must be right.
        let bundle = PathBuf::from("docs-example");
        let mut files = vec![SourceFile {
            path: bundle.join(&name),
            text,
        }];
        if name != "tenant.yaml" {
            files.push(SourceFile {
                path: bundle.join("tenant.yaml"),
                text: TENANT.to_owned(),
            });
        }
        if let Err(error) = compile_files(&bundle, &files, &LoadOptions::default()) {
            for diagnostic in error.diagnostics {
                if diagnostic.code == Code::UnknownReference {
                    continue;
                }
                let in_example =
                    diagnostic.location.file.file_name() == Path::new(&name).file_name();
                let place = match diagnostic.location.pos {
                    Some(pos) if in_example => {
                        format!("{}:{}", page.name, first_line + pos.line as usize - 1)
                    }
                    _ => at.clone(),
                };
                writeln!(
                    problems,
                    "{place}: the example {name} does not load: {}: error[{}]: {}",
                    diagnostic.location,
                    diagnostic.code.as_str(),
                    diagnostic.message
                )
                .unwrap();
            }
        }
    }
    assert!(problems.is_empty(), "bundle-format examples:\n{problems}");
    assert!(
        examples > 0,
        "{} marks no ```yaml block as an example",
        page.name
    );
}

#[test]
fn a_broken_example_is_reported() {
    // The check above must be able to fail: an unknown key in a role is not a reference.
    let bundle = PathBuf::from("docs-example");
    let files = [
        SourceFile {
            path: bundle.join("roles.yaml"),
            text: "roles:\n  viewer: { permisions: [\"app:read\"] }\n".to_owned(),
        },
        SourceFile {
            path: bundle.join("tenant.yaml"),
            text: TENANT.to_owned(),
        },
    ];
    let error = compile_files(&bundle, &files, &LoadOptions::default()).unwrap_err();
    assert!(
        error
            .diagnostics
            .iter()
            .any(|diagnostic| diagnostic.code != Code::UnknownReference),
        "{error}"
    );
}

/// A `portcullis` command shown on a page: where, and its first words.
struct Shown {
    at: String,
    words: Vec<String>,
}

/// The words after each `portcullis` in a shell line or a code span.
fn commands_in(text: &str, at: &str, found: &mut Vec<Shown>) {
    let mut search = 0;
    while let Some(offset) = text[search..].find("portcullis ") {
        let start = search + offset;
        search = start + "portcullis ".len();
        let preceded = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || "_-/.".contains(c));
        if preceded {
            continue;
        }
        let words: Vec<String> = text[search..]
            .split_whitespace()
            .take(2)
            .take_while(|word| {
                !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            })
            .map(str::to_owned)
            .collect();
        if !words.is_empty() && !words[0].starts_with('-') {
            found.push(Shown {
                at: at.to_owned(),
                words,
            });
        }
    }
}

/// The subcommand names in the first column of a `| subcommand | … |` table, under a heading
/// `` ### `portcullis PARENT` ``: every code span's first word, as `PARENT NAME`.
fn table_subcommands(page: &Page, found: &mut Vec<Shown>) {
    let mut parent: Option<String> = None;
    let mut in_table = false;
    for line in lines(&page.text).into_iter().filter(|line| !line.fenced) {
        if line.text.starts_with('#') {
            parent = code_spans(line.text)
                .first()
                .and_then(|span| span.strip_prefix("portcullis "))
                .map(str::to_owned);
            in_table = false;
            continue;
        }
        if !line.text.starts_with('|') {
            in_table = false;
            continue;
        }
        let first_cell = line.text[1..].split('|').next().unwrap_or_default().trim();
        if first_cell == "subcommand" {
            in_table = true;
            continue;
        }
        let Some(parent) = parent.as_ref().filter(|_| in_table) else {
            continue;
        };
        // The first cell ends at the first `|` outside a code span (`FILE\|-` is escaped).
        let row = line.text[1..].replace("\\|", "");
        let first = row
            .char_indices()
            .scan(false, |in_code, (index, c)| {
                if c == '`' {
                    *in_code = !*in_code;
                }
                Some((index, c, *in_code))
            })
            .find(|&(_, c, in_code)| c == '|' && !in_code)
            .map_or(row.as_str(), |(index, _, _)| &row[..index]);
        for span in code_spans(first) {
            let Some(name) = span.split_whitespace().next() else {
                continue;
            };
            if name.starts_with('-') || name.starts_with('|') {
                continue;
            }
            found.push(Shown {
                at: format!("{}:{}", page.name, line.number),
                words: vec![parent.clone(), name.to_owned()],
            });
        }
    }
}

fn help(words: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(words)
        .arg("--help")
        .output()
        .unwrap()
}

#[test]
fn cli_page_names_only_existing_subcommands() {
    let page = page("docs/cli.md");
    let mut shown = Vec::new();
    for block in blocks(&page.text) {
        if !matches!(block.info, "sh" | "console" | "shell" | "bash") {
            continue;
        }
        for (number, line) in &block.body {
            commands_in(line, &format!("{}:{number}", page.name), &mut shown);
        }
    }
    let from_blocks = shown.len();
    for line in lines(&page.text).into_iter().filter(|line| !line.fenced) {
        for span in code_spans(line.text) {
            commands_in(span, &format!("{}:{}", page.name, line.number), &mut shown);
        }
    }
    table_subcommands(&page, &mut shown);
    assert!(
        from_blocks > 0,
        "{} shows no `portcullis` command in a ```sh block",
        page.name
    );

    // Each distinct command is asked for its help once; a second word counts as a subcommand
    // when the first one has subcommands of its own.
    let mut verdicts: HashMap<Vec<String>, Result<(), String>> = HashMap::new();
    let mut has_subcommands: HashMap<String, bool> = HashMap::new();
    let mut problems = String::new();
    for shown in &shown {
        let first = &shown.words[..1];
        let first_ok = verdicts
            .entry(first.to_vec())
            .or_insert_with(|| {
                let output = help(first);
                if output.status.success() {
                    let text = String::from_utf8_lossy(&output.stdout);
                    has_subcommands.insert(first[0].clone(), text.contains("Commands:"));
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
                }
            })
            .clone();
        let words = match first_ok {
            Err(error) => {
                writeln!(
                    problems,
                    "{}: `portcullis {}` is not a subcommand: {error}",
                    shown.at, first[0]
                )
                .unwrap();
                continue;
            }
            Ok(()) if shown.words.len() > 1 && has_subcommands[&first[0]] => &shown.words[..2],
            Ok(()) => continue,
        };
        let verdict = verdicts.entry(words.to_vec()).or_insert_with(|| {
            let output = help(words);
            if output.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
            }
        });
        if let Err(error) = verdict {
            writeln!(
                problems,
                "{}: `portcullis {}` is not a subcommand: {error}",
                shown.at,
                words.join(" ")
            )
            .unwrap();
        }
    }
    assert!(problems.is_empty(), "commands on the CLI page:\n{problems}");
}

#[test]
fn an_unknown_subcommand_fails_its_help() {
    // The check above must be able to fail.
    assert!(!help(&["no-such-command".to_owned()]).status.success());
    assert!(
        !help(&["tenant".to_owned(), "no-such-command".to_owned()])
            .status
            .success()
    );
}
