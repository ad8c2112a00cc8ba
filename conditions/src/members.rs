//! How a compact JSON object splits into its members without parsing the values: the host's
//! projections and filtered reads and the guest SDK's CSV export both split rows this way, so
//! the scan (and what it refuses) is defined once.

/// Splits a compact JSON object (no whitespace between tokens) into its members, keys without
/// their quotes and values as text. Returns false, with `out` in any state, for anything else
/// (whitespace, a key with an escape, not an object): the caller then parses the text with
/// serde_json. The text is trusted to be valid JSON, as stored records and the host's rows are
/// (written by serde_json); the scan checks structure, not every value, which is what makes it
/// cheaper than serde_json's borrowing parse.
pub fn compact_members<'a>(text: &'a str, out: &mut Vec<(&'a str, &'a str)>) -> bool {
    out.clear();
    let b = text.as_bytes();
    if b.first() != Some(&b'{') {
        return false;
    }
    if b.get(1) == Some(&b'}') {
        return b.len() == 2;
    }
    let mut i = 1;
    loop {
        // "key":
        if b.get(i) != Some(&b'"') {
            return false;
        }
        let Some(len) = b[i + 1..].iter().position(|&c| c == b'"' || c == b'\\') else { return false };
        let end = i + 1 + len;
        if b[end] != b'"' || b.get(end + 1) != Some(&b':') {
            return false;
        }
        let key = &text[i + 1..end];
        i = end + 2;
        // The value runs to the first `,` or `}` outside strings and brackets.
        let start = i;
        let mut depth = 0usize;
        while i < b.len() {
            match b[i] {
                b'"' => match string_end(b, i) {
                    Some(after) => {
                        i = after;
                        continue;
                    }
                    None => return false,
                },
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b',' | b'}' if depth == 0 => break,
                b' ' | b'\n' | b'\r' | b'\t' => return false,
                _ => {}
            }
            i += 1;
        }
        if i == start || i >= b.len() {
            return false;
        }
        out.push((key, &text[start..i]));
        if b[i] == b'}' {
            return i + 1 == b.len();
        }
        i += 1;
    }
}

/// The index just past the string that opens at `open` (a `"`), escapes skipped.
fn string_end(b: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::compact_members;

    #[test]
    fn members_split_outside_strings_and_brackets() {
        let mut out = Vec::new();
        assert!(compact_members(r#"{"a":"},\"","b":[{"c":"]"}],"d":-1e-7,"e":null}"#, &mut out));
        assert_eq!(out, vec![("a", r#""},\"""#), ("b", r#"[{"c":"]"}]"#), ("d", "-1e-7"), ("e", "null")]);
        assert!(compact_members("{}", &mut out));
        assert!(out.is_empty());
        for refused in [r#"{"a": 1}"#, r#"{"we\"ird":1}"#, "[1]", r#"{"a":1}x"#, r#"{"a":"x"#, r#"{"a":}"#, ""] {
            assert!(!compact_members(refused, &mut out), "{refused}");
        }
    }
}
