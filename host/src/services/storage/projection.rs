//! Projections: which attributes a result carries, rendered as JSON text from a parsed record or straight from stored bytes.

use super::*;

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
        match serde_json::from_slice::<RawFields<'_>>(bytes) {
            Ok(fields) => Ok(self.json_from_fields(&fields, bytes.len())),
            // Keys with escapes cannot be borrowed; take the general path.
            Err(_) => Ok(self.json_from_value(&serde_json::from_slice(bytes).map_err(internal)?)),
        }
    }

    /// The projected record as JSON text, from its fields borrowed from `len` stored bytes.
    pub(super) fn json_from_fields(&self, fields: &RawFields<'_>, len: usize) -> String {
        let mut out = String::with_capacity(len + 16 * self.names.len());
        let mut matched = 0;
        out.push('{');
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            match fields.0.iter().find(|(k, _)| k == name) {
                Some((_, v)) => {
                    matched += 1;
                    out.push_str(v.get());
                }
                None => out.push_str("null"),
            }
        }
        out.push('}');
        if let Some(wider) = self.widened(fields.0.len(), matched, fields.0.iter().map(|(k, _)| *k)) {
            return wider.json_from_fields(fields, len);
        }
        out
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

/// A stored record's top-level fields, borrowed from its bytes.
pub(super) struct RawFields<'a>(pub(super) Vec<(&'a str, &'a serde_json::value::RawValue)>);

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
