//! Request decoding with HarperDB's error texts: a missing or mistyped field becomes a
//! `bad-request` naming the field (`'attributes' must be an array`), the same in every operation.

use crate::Error;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A request with no fields of its own (the `operation` key is ignored).
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

/// Decodes a JSON request body into `T`, turning serde's messages into HarperDB's.
pub fn decode_request<T: DeserializeOwned>(body: &str) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_str(body);
    let result: Result<T, _> = serde_path_to_error_lite::deserialize(&mut de);
    result.map_err(|(path, err)| Error::BadRequest(harper_text(&path, &err.to_string())))
}

/// Maps one serde_json error message at `path` to HarperDB's wording.
fn harper_text(path: &str, message: &str) -> String {
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let full = if path.is_empty() { field.to_string() } else { format!("{path}.{field}") };
        return format!("'{full}' is required");
    }
    if path.is_empty() {
        return "Request body must be a JSON object".to_string();
    }
    let expected = message
        .split("expected ")
        .nth(1)
        .map(|e| e.split(" at line").next().unwrap_or(e))
        .unwrap_or("");
    let kind = if expected.contains("sequence") || expected.contains("array") {
        "an array"
    } else if expected.contains("string") {
        "a string"
    } else if expected.contains("bool") {
        "a boolean"
    } else if expected.starts_with('u') || expected.starts_with('i') || expected.starts_with('f')
        || expected.contains("number") || expected.contains("integer")
    {
        "a number"
    } else if expected.contains("map") || expected.contains("struct") || expected.contains("object") {
        "an object"
    } else {
        let detail = message.split(" at line").next().unwrap_or(message);
        return format!("'{path}' is invalid: {detail}");
    };
    format!("'{path}' must be {kind}")
}

/// Tracks the path of the field being decoded, so errors can name it. A small
/// stand-in for the serde_path_to_error crate, covering struct fields and sequence indexes.
mod serde_path_to_error_lite {
    use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;
    use std::fmt;

    thread_local! {
        static PATH: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
        static ERROR_PATH: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    pub fn deserialize<'de, T, D>(de: D) -> Result<T, (String, D::Error)>
    where
        T: DeserializeOwned,
        D: Deserializer<'de>,
    {
        PATH.with(|p| p.borrow_mut().clear());
        ERROR_PATH.with(|p| *p.borrow_mut() = None);
        let result = T::deserialize(Wrap(de));
        result.map_err(|e| {
            let path = ERROR_PATH.with(|p| p.borrow_mut().take()).unwrap_or_default();
            (path, e)
        })
    }

    fn current() -> String {
        PATH.with(|p| p.borrow().join("."))
    }

    fn note_error() {
        ERROR_PATH.with(|p| {
            let mut p = p.borrow_mut();
            if p.is_none() {
                *p = Some(current());
            }
        });
    }

    struct Wrap<D>(D);

    macro_rules! forward {
        ($($method:ident)*) => {$(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                let r = self.0.$method(WrapVisitor(visitor));
                if r.is_err() { note_error(); }
                r
            }
        )*};
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Wrap<D> {
        type Error = D::Error;
        forward! {
            deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
            deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
            deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
            deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
            deserialize_option deserialize_unit deserialize_seq deserialize_map
            deserialize_identifier deserialize_ignored_any
        }
        fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
            let r = self.0.deserialize_unit_struct(name, WrapVisitor(visitor));
            if r.is_err() { note_error(); }
            r
        }
        fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
            let r = self.0.deserialize_newtype_struct(name, WrapVisitor(visitor));
            if r.is_err() { note_error(); }
            r
        }
        fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Self::Error> {
            let r = self.0.deserialize_tuple(len, WrapVisitor(visitor));
            if r.is_err() { note_error(); }
            r
        }
        fn deserialize_tuple_struct<V: Visitor<'de>>(self, name: &'static str, len: usize, visitor: V) -> Result<V::Value, Self::Error> {
            let r = self.0.deserialize_tuple_struct(name, len, WrapVisitor(visitor));
            if r.is_err() { note_error(); }
            r
        }
        fn deserialize_struct<V: Visitor<'de>>(self, name: &'static str, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Self::Error> {
            let r = self.0.deserialize_struct(name, fields, WrapVisitor(visitor));
            if r.is_err() { note_error(); }
            r
        }
        fn deserialize_enum<V: Visitor<'de>>(self, name: &'static str, variants: &'static [&'static str], visitor: V) -> Result<V::Value, Self::Error> {
            let r = self.0.deserialize_enum(name, variants, visitor);
            if r.is_err() { note_error(); }
            r
        }
    }

    struct WrapVisitor<V>(V);

    impl<'de, V: Visitor<'de>> Visitor<'de> for WrapVisitor<V> {
        type Value = V::Value;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result { self.0.expecting(f) }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> { self.0.visit_bool(v) }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> { self.0.visit_i64(v) }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> { self.0.visit_u64(v) }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> { self.0.visit_f64(v) }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> { self.0.visit_str(v) }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> { self.0.visit_borrowed_str(v) }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> { self.0.visit_string(v) }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> { self.0.visit_bytes(v) }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> { self.0.visit_none() }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> { self.0.visit_some(Wrap(d)) }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { self.0.visit_unit() }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> { self.0.visit_newtype_struct(Wrap(d)) }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            self.0.visit_seq(WrapSeq { inner: seq, index: 0 })
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            self.0.visit_map(WrapMap { inner: map, pushed: false })
        }
    }

    struct WrapSeq<A> { inner: A, index: usize }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for WrapSeq<A> {
        type Error = A::Error;
        fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
            PATH.with(|p| p.borrow_mut().push(self.index.to_string()));
            self.index += 1;
            let r = self.inner.next_element_seed(WrapSeed(seed));
            if r.is_err() { note_error(); }
            PATH.with(|p| p.borrow_mut().pop());
            r
        }
    }

    struct WrapMap<A> { inner: A, pushed: bool }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for WrapMap<A> {
        type Error = A::Error;
        fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
            // Capture the key text so the value's errors can name it.
            let mut captured = None;
            let r = self.inner.next_key_seed(CaptureKey { seed, out: &mut captured });
            if let Some(key) = captured {
                PATH.with(|p| p.borrow_mut().push(key));
                self.pushed = true;
            }
            r
        }
        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
            let r = self.inner.next_value_seed(WrapSeed(seed));
            if r.is_err() { note_error(); }
            if self.pushed {
                PATH.with(|p| p.borrow_mut().pop());
                self.pushed = false;
            }
            r
        }
    }

    struct WrapSeed<S>(S);

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for WrapSeed<S> {
        type Value = S::Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
            self.0.deserialize(Wrap(d))
        }
    }

    struct CaptureKey<'a, K> { seed: K, out: &'a mut Option<String> }

    impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for CaptureKey<'_, K> {
        type Value = K::Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
            self.seed.deserialize(KeyCapture { inner: d, out: self.out })
        }
    }

    struct KeyCapture<'a, D> { inner: D, out: &'a mut Option<String> }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for KeyCapture<'_, D> {
        type Error = D::Error;
        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.inner.deserialize_any(KeyVisitor { inner: visitor, out: self.out })
        }
        fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.inner.deserialize_identifier(KeyVisitor { inner: visitor, out: self.out })
        }
        fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.inner.deserialize_str(KeyVisitor { inner: visitor, out: self.out })
        }
        fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.inner.deserialize_string(KeyVisitor { inner: visitor, out: self.out })
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map struct enum ignored_any
        }
    }

    struct KeyVisitor<'a, V> { inner: V, out: &'a mut Option<String> }

    impl<'de, V: Visitor<'de>> Visitor<'de> for KeyVisitor<'_, V> {
        type Value = V::Value;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result { self.inner.expecting(f) }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
            *self.out = Some(v.to_string());
            self.inner.visit_str(v)
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
            *self.out = Some(v.to_string());
            self.inner.visit_borrowed_str(v)
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
            *self.out = Some(v.clone());
            self.inner.visit_string(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<V::Value, E> {
            *self.out = Some(v.to_string());
            self.inner.visit_u64(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Req {
        name: String,
        attributes: Option<Vec<String>>,
        flag: Option<bool>,
        count: Option<u32>,
    }

    fn err(body: &str) -> String {
        match decode_request::<Req>(body) {
            Err(Error::BadRequest(t)) => t,
            other => panic!("expected bad-request, got {other:?}"),
        }
    }

    #[test]
    fn names_the_field_in_harper_words() {
        assert_eq!(err(r#"{"name":"a","attributes":"x"}"#), "'attributes' must be an array");
        assert_eq!(err(r#"{"name":1}"#), "'name' must be a string");
        assert_eq!(err(r#"{"attributes":[]}"#), "'name' is required");
        assert_eq!(err(r#"{"name":"a","flag":"yes"}"#), "'flag' must be a boolean");
        assert_eq!(err(r#"{"name":"a","count":"x"}"#), "'count' must be a number");
        assert_eq!(err(r#"{"name":"a","attributes":["ok",3]}"#), "'attributes.1' must be a string");
    }

    #[test]
    fn accepts_unknown_keys_and_nulls() {
        let r: Req = decode_request(r#"{"operation":"x","name":"a","attributes":null,"other":1}"#)
            .expect("valid");
        assert_eq!(r.name, "a");
        assert!(r.attributes.is_none());
    }
}
