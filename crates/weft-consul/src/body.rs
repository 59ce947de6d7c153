//! Request bodies as Consul reads them: Go's JSON decoder matches struct fields
//! case-insensitively (clients send `name`, `Name` or `NAME` alike), and Consul's
//! endpoints also translate snake_case (`tagged_addresses`, `enable_tag_override`),
//! while the keys of maps (`Meta`, `TaggedAddresses`) are data and keep their case.
//! Every accessor names the field it rejects.

use crate::error::ConsulError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// One JSON object of a request, with the path that led to it for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

/// Parses a request body into its top-level object (an empty body is an empty object).
pub fn parse(body: &[u8]) -> Result<Value, ConsulError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ConsulError::BadRequest(format!("Request decode failed: {e}")))
}

impl<'a> Obj<'a> {
    pub fn root(value: &'a Value) -> Result<Self, ConsulError> {
        match value {
            Value::Object(map) => Ok(Self { map, path: "" }),
            _ => Err(ConsulError::BadRequest(
                "Request decode failed: the body must be a JSON object".into(),
            )),
        }
    }

    fn name(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    fn bad(&self, field: &str, want: &str) -> ConsulError {
        ConsulError::BadRequest(format!(
            "Request decode failed: field {} must be {want}",
            self.name(field)
        ))
    }

    /// The value of `field`, matched case-insensitively and ignoring underscores (as
    /// Consul translates snake_case keys); `null` counts as absent.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.map
            .iter()
            .find(|(k, _)| same_field(k, field))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    pub fn str(&self, field: &str) -> Result<Option<&'a str>, ConsulError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.bad(field, "a string")),
        }
    }

    pub fn string(&self, field: &str) -> Result<String, ConsulError> {
        Ok(self.str(field)?.unwrap_or_default().to_string())
    }

    pub fn u64(&self, field: &str) -> Result<Option<u64>, ConsulError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.bad(field, "a non-negative integer")),
            Some(_) => Err(self.bad(field, "a number")),
        }
    }

    pub fn port(&self, field: &str) -> Result<u16, ConsulError> {
        match self.u64(field)? {
            None => Ok(0),
            Some(p) => u16::try_from(p).map_err(|_| self.bad(field, "a port (0-65535)")),
        }
    }

    pub fn bool(&self, field: &str) -> Result<bool, ConsulError> {
        match self.get(field) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.bad(field, "true or false")),
        }
    }

    pub fn strings(&self, field: &str) -> Result<Vec<String>, ConsulError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.bad(field, "a list of strings")),
            Some(_) => Err(self.bad(field, "a list of strings")),
        }
    }

    /// A map of strings to strings (`Meta`, `NodeMeta`): keys keep their case.
    pub fn string_map(&self, field: &str) -> Result<BTreeMap<String, String>, ConsulError> {
        match self.get(field) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect::<Option<BTreeMap<_, _>>>()
                .ok_or_else(|| self.bad(field, "a map of strings")),
            Some(_) => Err(self.bad(field, "a map of strings")),
        }
    }

    pub fn obj(&self, field: &str) -> Result<Option<Obj<'a>>, ConsulError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj {
                map,
                path: self.nested_path(field),
            })),
            Some(_) => Err(self.bad(field, "an object")),
        }
    }

    pub fn objs(&self, field: &str) -> Result<Vec<Obj<'a>>, ConsulError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(map) => Ok(Obj {
                        map,
                        path: self.nested_path(field),
                    }),
                    _ => Err(self.bad(field, "a list of objects")),
                })
                .collect(),
            Some(_) => Err(self.bad(field, "a list of objects")),
        }
    }

    /// The raw value of `field` (kept as it was sent: `Proxy`, `Connect`, `Locality`).
    pub fn raw(&self, field: &str) -> Option<Value> {
        self.get(field).cloned()
    }

    /// A Go duration (`"10s"`, `"1m30s"`, `"100ms"`) or a number of nanoseconds.
    pub fn duration(&self, field: &str) -> Result<Option<Duration>, ConsulError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => parse_duration(s)
                .map(Some)
                .ok_or_else(|| self.bad(field, "a duration such as \"10s\"")),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|ns| Some(Duration::from_nanos(ns)))
                .ok_or_else(|| self.bad(field, "a duration")),
            Some(_) => Err(self.bad(field, "a duration")),
        }
    }

    /// A nested object is named by its key as the client sent it (`Check`, `Service`):
    /// enough to find the field, and it lives as long as the body.
    fn nested_path(&self, field: &str) -> &'a str {
        self.map
            .keys()
            .find(|k| same_field(k, field))
            .map_or("", String::as_str)
    }
}

/// Whether a key as sent names `field`: case-insensitive, underscores ignored.
fn same_field(key: &str, field: &str) -> bool {
    let mut a = key.bytes().filter(|b| *b != b'_');
    let mut b = field.bytes().filter(|b| *b != b'_');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y) => {}
            _ => return false,
        }
    }
}

/// Parses a Go duration: a sequence of decimal numbers with units ns, us, µs, ms, s, m, h.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    (total.is_finite() && total < 1e9).then(|| Duration::from_secs_f64(total))
}

/// Formats a duration the way Go prints it for Consul's `TTL` and `Interval` fields.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 || h > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(format_duration(Duration::from_secs(20)), "20s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
    }

    #[test]
    fn fields_match_case_insensitively_and_maps_keep_their_keys() {
        let v: Value =
            serde_json::from_str(r#"{"name": "web", "META": {"Version": "1"}, "port": 80}"#)
                .unwrap();
        let o = Obj::root(&v).unwrap();
        assert_eq!(o.str("Name").unwrap(), Some("web"));
        assert_eq!(o.port("Port").unwrap(), 80);
        assert_eq!(o.string_map("Meta").unwrap()["Version"], "1");
        let snake: Value = serde_json::from_str(r#"{"enable_tag_override": true}"#).unwrap();
        assert!(
            Obj::root(&snake)
                .unwrap()
                .bool("EnableTagOverride")
                .unwrap()
        );
        let bad: Value = serde_json::from_str(r#"{"Port": "eighty"}"#).unwrap();
        let err = Obj::root(&bad).unwrap().port("Port").unwrap_err();
        assert!(err.to_string().contains("Port"), "{err}");
    }
}
