//! Order-preserving, self-delimiting encoding of JSON scalars into RocksDB keys.
//!
//! Layout (documented in `mod.rs`): a type tag, then the value. Values of one type sort in
//! their natural order (numbers numerically, strings by bytes), and no encoding is a prefix
//! of another, so `index key = attribute 0x00 value primary-key` can be split again.

use serde_json::{Number, Value};

const NULL: u8 = 0x01;
const FALSE: u8 = 0x02;
const TRUE: u8 = 0x03;
const NUMBER: u8 = 0x04;
const STRING: u8 = 0x05;
/// Objects and arrays as primary keys are refused before they get here; this tag keeps the
/// encoding total for anything else that slips through (encoded as its JSON text).
const OTHER: u8 = 0x06;

/// The tag a value's encoding starts with; used to bound range scans to one type.
pub fn tag_of(value: &Value) -> u8 {
    match value {
        Value::Null => NULL,
        Value::Bool(false) => FALSE,
        Value::Bool(true) => TRUE,
        Value::Number(_) => NUMBER,
        Value::String(_) => STRING,
        _ => OTHER,
    }
}

pub fn encode(value: &Value, out: &mut Vec<u8>) {
    out.push(tag_of(value));
    match value {
        Value::Null | Value::Bool(_) => {}
        Value::Number(n) => out.extend_from_slice(&ordered_f64(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => escape(s.as_bytes(), out, true),
        other => escape(other.to_string().as_bytes(), out, true),
    }
}

/// [`encode`] of a string value, without making a `Value` of it.
pub fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.push(STRING);
    escape(s.as_bytes(), out, true);
}

/// Whether a number's key is exactly the number: keys hold numbers as f64, so an integer
/// beyond 2^53 that f64 cannot represent would share its key with a neighbour (two ids, one
/// record). Such primary keys are refused on write and can never be found on read.
pub fn exact(n: &Number) -> bool {
    if let Some(u) = n.as_u64() {
        (u as f64) as u128 == u as u128
    } else if let Some(i) = n.as_i64() {
        (i as f64) as i128 == i as i128
    } else {
        true
    }
}

/// [`exact`] for any value (only numbers can be inexact).
pub fn exact_value(v: &Value) -> bool {
    match v {
        Value::Number(n) => exact(n),
        _ => true,
    }
}

pub fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode(value, &mut out);
    out
}

/// The bytes every encoded string starting with `prefix` starts with.
pub fn string_prefix(prefix: &str) -> Vec<u8> {
    let mut out = vec![STRING];
    escape(prefix.as_bytes(), &mut out, false);
    out
}

/// Decodes one value from the front of `bytes`, returning it and the rest.
pub fn decode(bytes: &[u8]) -> Option<(Value, &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    match tag {
        NULL => Some((Value::Null, rest)),
        FALSE => Some((Value::Bool(false), rest)),
        TRUE => Some((Value::Bool(true), rest)),
        NUMBER => {
            let raw: [u8; 8] = rest.get(..8)?.try_into().ok()?;
            let f = from_ordered_f64(raw);
            Some((number_value(f), &rest[8..]))
        }
        STRING | OTHER => {
            let (raw, rest) = unescape(rest)?;
            let text = String::from_utf8(raw).ok()?;
            if tag == STRING {
                Some((Value::String(text), rest))
            } else {
                Some((serde_json::from_str(&text).ok()?, rest))
            }
        }
        _ => None,
    }
}

/// Whether a value [`decode`] gave is certainly the number (or string) that was written:
/// numbers are keyed as f64, so one with a fraction or beyond 2^53 may come back as another
/// number; a read that needs the written value then takes it from the record. (An integral
/// one is the same number, though `5.0` comes back as `5`.)
pub(super) fn decoded_as_written(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.as_f64().is_some_and(integral),
        _ => true,
    }
}

/// An f64 that is an integer an i64/u64 holds exactly.
fn integral(f: f64) -> bool {
    f.fract() == 0.0 && f.abs() < 9.0e15
}

/// Integral floats come back as integers, as they were written (`5`, not `5.0`).
fn number_value(f: f64) -> Value {
    if integral(f) {
        if f < 0.0 {
            Value::Number(Number::from(f as i64))
        } else {
            Value::Number(Number::from(f as u64))
        }
    } else {
        Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
    }
}

/// IEEE-754 bits rearranged so that byte order is numeric order.
fn ordered_f64(f: f64) -> [u8; 8] {
    let f = if f == 0.0 { 0.0 } else { f }; // -0.0 and 0.0 are one key
    let bits = f.to_bits();
    let bits = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
    bits.to_be_bytes()
}

fn from_ordered_f64(raw: [u8; 8]) -> f64 {
    let bits = u64::from_be_bytes(raw);
    let bits = if bits >> 63 == 1 { bits & !(1 << 63) } else { !bits };
    f64::from_bits(bits)
}

/// 0x00 becomes 0x00 0xFF and the end is 0x00 0x00, so encodings never prefix one another
/// and still sort by their bytes.
fn escape(bytes: &[u8], out: &mut Vec<u8>, terminate: bool) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    if terminate {
        out.extend_from_slice(&[0, 0]);
    }
}

fn unescape(bytes: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0 {
            match bytes.get(i + 1)? {
                0 => return Some((out, &bytes[i + 2..])),
                0xFF => {
                    out.push(0);
                    i += 2;
                    continue;
                }
                _ => return None,
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    None
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xFF; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_splits() {
        for v in [json!(null), json!(true), json!(false), json!(5), json!(-3), json!(2.5), json!("a\0b"), json!("")] {
            let mut bytes = encoded(&v);
            bytes.extend_from_slice(&encoded(&json!("pk")));
            let (back, rest) = decode(&bytes).expect("decodes");
            assert_eq!(back, v);
            assert_eq!(decode(rest).expect("pk").0, json!("pk"));
        }
    }

    #[test]
    fn order_is_natural_within_a_type_and_types_are_distinct() {
        let nums = [json!(-10.5), json!(-1), json!(0), json!(0.25), json!(3), json!(1e10)];
        for w in nums.windows(2) {
            assert!(encoded(&w[0]) < encoded(&w[1]), "{} < {}", w[0], w[1]);
        }
        let strs = [json!(""), json!("a"), json!("a\0"), json!("ab"), json!("b")];
        for w in strs.windows(2) {
            assert!(encoded(&w[0]) < encoded(&w[1]), "{} < {}", w[0], w[1]);
        }
        assert_ne!(encoded(&json!(3)), encoded(&json!("3")));
    }

    #[test]
    fn only_integers_f64_holds_exactly_are_exact() {
        assert!(exact_value(&json!(9007199254740992u64)) && exact_value(&json!(9007199254740994u64)));
        assert!(!exact_value(&json!(9007199254740993u64)) && !exact_value(&json!(-9007199254740993i64)));
        assert!(!exact_value(&json!(u64::MAX)) && exact_value(&json!(2.5)) && exact_value(&json!("x")));
    }

    #[test]
    fn string_prefixes_bound_prefix_scans() {
        let p = string_prefix("ab");
        assert!(encoded(&json!("abc")).starts_with(&p));
        assert!(!encoded(&json!("a")).starts_with(&p));
        assert!(encoded(&json!("abz")) < prefix_end(&p));
        assert!(encoded(&json!("ac")) >= prefix_end(&p));
    }
}
