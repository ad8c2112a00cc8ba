//! Projections: which attributes a result carries, rendered as JSON text from a parsed record or straight from stored bytes.

use super::*;
use opshost_conditions::members::compact_members;

/// Which attributes a result carries, in which order.
#[derive(Clone, Debug)]
pub(super) struct Projection {
    pub(super) names: Vec<String>,
    /// `["*"]`: every attribute. The names were the table's attributes when the read began; a
    /// write that committed since can have brought new ones, so a record with fields outside
    /// `names` is shown with them too (see [`Projection::widened`]).
    pub(super) star: bool,
}

impl Projection {
    /// `["*"]` is the primary key, the two timestamps, then every attribute alphabetically
    /// (HarperDB's export order). Unknown names are refused.
    pub(super) fn new(meta: &TableMeta, attributes: &[String]) -> Result<Self, ServiceError> {
        if attributes.is_empty() || attributes.iter().any(|a| a == "*") {
            let mut names = vec![meta.primary_key.clone(), CREATED.to_string(), UPDATED.to_string()];
            names.extend(meta.attributes.iter().filter(|a| **a != meta.primary_key).cloned());
            return Ok(Self { names, star: true });
        }
        for a in attributes {
            if !meta.attributes.contains(a) && a != CREATED && a != UPDATED {
                return Err(ServiceError::BadRequest(format!("unknown attribute '{a}'")));
            }
        }
        Ok(Self { names: attributes.to_vec(), star: false })
    }

    /// For a `*` projection and a record with `fields` fields of which only `matched` are in
    /// `names`: the projection that shows this record whole. A write adds its new attribute
    /// names to the table after its records are visible, so a reader that took the names just
    /// before would otherwise drop them (a finished job read without its message).
    pub(super) fn widened<'k>(&self, fields: usize, matched: usize, keys: impl Iterator<Item = &'k str>) -> Option<Projection> {
        if !self.star || matched >= fields {
            return None;
        }
        let mut names = self.names.clone();
        names.extend(keys.filter(|k| !self.names.iter().any(|n| n == k)).map(str::to_string));
        // The first three are the primary key and the timestamps; the rest stay alphabetical.
        names[3.min(self.names.len())..].sort();
        Some(Projection { names, star: false })
    }

    /// The projected record as JSON text, straight from a parsed record.
    pub(super) fn json_from_value(&self, record: &Value) -> String {
        let mut out = Vec::with_capacity(64 * self.names.len());
        let mut matched = 0;
        out.push(b'{');
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Attribute names are `[A-Za-z0-9_]+` (checked on write): no escaping needed.
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            match record.get(name) {
                Some(v) => {
                    matched += 1;
                    let _ = serde_json::to_writer(&mut out, v);
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        if let Some(map) = record.as_object() {
            if let Some(wider) = self.widened(map.len(), matched, map.keys().map(String::as_str)) {
                return wider.json_from_value(record);
            }
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The projected record as JSON text, from the stored bytes without building a `Value`:
    /// the stored values are compact JSON already and are copied as they are.
    pub(super) fn json_from_raw(&self, bytes: &[u8]) -> Result<String, ServiceError> {
        let mut out = String::with_capacity(bytes.len() + 16 * self.names.len());
        self.json_from_raw_into(bytes, &mut out)?;
        Ok(out)
    }

    /// [`Projection::json_from_raw`] appended to `out` (a page of rows).
    pub(super) fn json_from_raw_into(&self, bytes: &[u8], out: &mut String) -> Result<(), ServiceError> {
        let mut fields = Vec::with_capacity(self.names.len());
        if borrow_fields(bytes, &mut fields) {
            self.json_from_fields_into(&fields, out);
            return Ok(());
        }
        // Keys with escapes cannot be borrowed; take the general path.
        out.push_str(&self.json_from_value(&serde_json::from_slice(bytes).map_err(internal)?));
        Ok(())
    }

    /// The projected record as JSON text, from its fields (key, value text) borrowed from the
    /// stored bytes, appended to `out`.
    pub(super) fn json_from_fields_into(&self, fields: &[(&str, &str)], out: &mut String) {
        let start = out.len();
        let mut matched = 0;
        out.push('{');
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            match fields.iter().find(|(k, _)| *k == name) {
                Some((_, v)) => {
                    matched += 1;
                    out.push_str(v);
                }
                None => out.push_str("null"),
            }
        }
        out.push('}');
        if let Some(wider) = self.widened(fields.len(), matched, fields.iter().map(|(k, _)| *k)) {
            out.truncate(start);
            wider.json_from_fields_into(fields, out);
        }
    }

    pub(super) fn apply(&self, record: &Value) -> Value {
        let mut out = Map::with_capacity(self.names.len());
        let mut matched = 0;
        for name in &self.names {
            let value = record.get(name);
            matched += usize::from(value.is_some());
            out.insert(name.clone(), value.cloned().unwrap_or(Value::Null));
        }
        if let Some(map) = record.as_object() {
            if let Some(wider) = self.widened(map.len(), matched, map.keys().map(String::as_str)) {
                return wider.apply(record);
            }
        }
        Value::Object(out)
    }
}

/// Borrows a stored record's top-level fields (key, value as JSON text) into `out`; false when
/// they cannot be borrowed (not an object, a key with an escape). Records are stored compact by
/// serde_json, so a byte scan splits them without parsing the values (serde_json's borrowing
/// parse, which validates every value, was most of an export's host CPU); anything the scan
/// does not accept is read by serde_json as before.
pub(super) fn borrow_fields<'a>(bytes: &'a [u8], out: &mut Vec<(&'a str, &'a str)>) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    if compact_members(text, out) {
        return true;
    }
    match serde_json::from_slice::<RawFields<'a>>(bytes) {
        Ok(fields) => {
            out.clear();
            out.extend(fields.0.into_iter().map(|(k, v)| (k, v.get())));
            true
        }
        Err(_) => false,
    }
}

/// A stored record's top-level fields, borrowed from its bytes.
struct RawFields<'a>(Vec<(&'a str, &'a serde_json::value::RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawFields<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = RawFields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a record")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<&'de str, &'de serde_json::value::RawValue>()? {
                    fields.push(entry);
                }
                Ok(RawFields(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte scan agrees with serde_json on every record it accepts, refuses whatever it
    /// cannot split exactly, and a refused record still borrows through serde_json.
    #[test]
    fn compact_records_split_like_serde_json() {
        let accepted = [
            r#"{"id":1,"__createdtime__":1795736087111.1882,"name":"Penny \"P\", the 1st","note":"line1\nline2","ok":true,"n":null,"obj":{"x":1,"s":"a\"b}"},"arr":[1,"two",null,"]"]}"#,
            r#"{}"#,
            r#"{"a":"}","b":"{[","c":[{"d":"]"}],"e":"\\","f":"é \u00e9"}"#,
            r#"{"k":"\\\"","n":-1e-7,"z":[[],{}]}"#,
        ];
        let mut out = Vec::new();
        for text in accepted {
            assert!(compact_members(text, &mut out), "{text}");
            let RawFields(want) = serde_json::from_str(text).expect("valid");
            let want: Vec<(&str, &str)> = want.iter().map(|(k, v)| (*k, v.get())).collect();
            assert_eq!(out, want, "{text}");
        }
        for text in [r#"{"a": 1}"#, "{\"a\":1,\n\"b\":2}", r#"{"we\"ird":1}"#, r#"[1,2]"#, r#"{"a":1}x"#, r#"{"a":"x"#, ""] {
            assert!(!compact_members(text, &mut out), "{text}");
        }
        assert!(borrow_fields(br#"{"a": 1, "b" : [1, 2]}"#, &mut out));
        assert_eq!(out, vec![("a", "1"), ("b", "[1, 2]")]);
        assert!(!borrow_fields(br#"{"we\"ird":1}"#, &mut out));
        assert!(!borrow_fields(b"[1]", &mut out));
    }
}
