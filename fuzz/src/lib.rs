//! Input formats shared by the fuzz targets. Each is plain text, so that seeds are easy to
//! write by hand and libFuzzer's mutations stay meaningful.

/// Splits a bundle input into named files. Text before the first `%%% NAME` line is
/// `tenant.yaml`; each `%%% NAME` line starts a file called NAME.
pub fn split_files(text: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut name = String::from("tenant.yaml");
    let mut body = String::new();
    let mut first = true;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("%%% ") {
            if !first || !body.is_empty() {
                files.push((std::mem::take(&mut name), std::mem::take(&mut body)));
            }
            name = rest.trim().to_owned();
            first = false;
        } else {
            body.push_str(line);
        }
    }
    if !first || !body.is_empty() {
        files.push((name, body));
    }
    files
}

/// Splits `bytes` at its first NUL byte: (before, after). Without one, `after` is empty.
pub fn split_nul(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == 0) {
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (bytes, &[]),
    }
}
