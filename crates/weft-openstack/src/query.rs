//! Neutron's list queries: attribute filters (`?name=a&name=b`, any of the values),
//! `fields=` projection, and pagination (`limit`, `marker`, with a `next` link).

use crate::error::NeutronError;
use serde_json::{Map, Value};

/// A parsed list query.
#[derive(Debug, Default)]
pub struct ListQuery {
    filters: Vec<(String, Vec<String>)>,
    fields: Vec<String>,
    limit: Option<usize>,
    marker: Option<String>,
    reverse: bool,
}

/// Parameters that are not attribute filters.
const CONTROL: &[&str] = &[
    "fields",
    "limit",
    "marker",
    "page_reverse",
    "sort_key",
    "sort_dir",
];

impl ListQuery {
    pub fn parse(pairs: Vec<(String, String)>) -> Result<Self, NeutronError> {
        let mut query = ListQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "fields" => query.fields.push(value),
                "limit" => {
                    let n: usize = value.parse().map_err(|_| {
                        NeutronError::bad_request(format!(
                            "Limit must be an integer 0 or greater and not '{value}'"
                        ))
                    })?;
                    // Neutron: 0 means no limit.
                    query.limit = (n > 0).then_some(n);
                }
                "marker" => query.marker = Some(value),
                "page_reverse" => query.reverse = value.eq_ignore_ascii_case("true"),
                k if CONTROL.contains(&k) => {}
                _ => match query.filters.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, values)) => values.push(value),
                    None => query.filters.push((key, vec![value])),
                },
            }
        }
        Ok(query)
    }

    /// Filters, sorts by id, pages and projects `items`; returns them with the `next`
    /// (and `previous`) links when a page was cut.
    pub fn apply(&self, mut items: Vec<Value>, collection_url: &str) -> (Vec<Value>, Vec<Value>) {
        items.retain(|item| self.matches(item));
        items.sort_by(|a, b| id(a).cmp(id(b)));
        if self.reverse {
            items.reverse();
        }
        if let Some(marker) = &self.marker
            && let Some(at) = items.iter().position(|i| id(i) == marker)
        {
            items.drain(..=at);
        }
        let mut links = Vec::new();
        if let Some(limit) = self.limit
            && items.len() > limit
        {
            items.truncate(limit);
            if let Some(last) = items.last() {
                let mut href = format!("{collection_url}?limit={limit}&marker={}", id(last));
                for field in &self.fields {
                    href.push_str(&format!("&fields={field}"));
                }
                for (key, values) in &self.filters {
                    for v in values {
                        href.push_str(&format!("&{key}={v}"));
                    }
                }
                links.push(serde_json::json!({"rel": "next", "href": href}));
            }
        }
        let items = items.into_iter().map(|i| self.project(i)).collect();
        (items, links)
    }

    /// An attribute filter matches when the attribute equals one of its values; a filter
    /// on an attribute the resource does not have is ignored, as Neutron ignores it.
    fn matches(&self, item: &Value) -> bool {
        self.filters
            .iter()
            .all(|(key, values)| match item.get(key) {
                None => true,
                Some(attr) => values.iter().any(|v| equal(attr, v)),
            })
    }

    fn project(&self, item: Value) -> Value {
        if self.fields.is_empty() {
            return item;
        }
        let Value::Object(map) = item else {
            return item;
        };
        let kept: Map<String, Value> = map
            .into_iter()
            .filter(|(k, _)| self.fields.iter().any(|f| f == k))
            .collect();
        Value::Object(kept)
    }
}

fn id(item: &Value) -> &str {
    item.get("id").and_then(Value::as_str).unwrap_or("")
}

fn equal(attr: &Value, wanted: &str) -> bool {
    match attr {
        Value::String(s) => s == wanted,
        Value::Bool(b) => wanted.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Number(n) => n.to_string() == wanted,
        Value::Null => wanted.is_empty() || wanted == "None",
        Value::Array(values) => values.iter().any(|v| equal(v, wanted)),
        Value::Object(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> ListQuery {
        ListQuery::parse(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn filters_fields_and_pages() {
        let items = vec![
            json!({"id": "c", "name": "x", "admin_state_up": true}),
            json!({"id": "a", "name": "y", "admin_state_up": true}),
            json!({"id": "b", "name": "x", "admin_state_up": false}),
        ];
        let (got, links) = q(&[("name", "x")]).apply(items.clone(), "u");
        assert_eq!(got.len(), 2);
        assert!(links.is_empty());
        let (got, _) = q(&[("admin_state_up", "True"), ("fields", "id")]).apply(items.clone(), "u");
        assert_eq!(got, vec![json!({"id": "a"}), json!({"id": "c"})]);
        let (got, links) = q(&[("limit", "1")]).apply(items.clone(), "u");
        assert_eq!(got[0]["id"], "a");
        assert_eq!(links[0]["href"], "u?limit=1&marker=a");
        let (got, _) = q(&[("limit", "1"), ("marker", "a")]).apply(items.clone(), "u");
        assert_eq!(got[0]["id"], "b");
        let (got, _) = q(&[("id", "a"), ("id", "b")]).apply(items, "u");
        assert_eq!(got.len(), 2);
        assert!(ListQuery::parse(vec![("limit".into(), "x".into())]).is_err());
    }
}
