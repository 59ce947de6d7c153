//! Consul's `?filter=` expressions (go-bexpr), evaluated against the JSON of each result
//! item: selectors (`Service.Tags`), `==`, `!=`, `in`, `not in`, `contains`,
//! `not contains`, `is empty`, `is not empty`, `and`, `or`, `not` and parentheses, with
//! values as "double-quoted" or `backtick` strings, numbers or bare words. `matches`
//! (regular expressions) is refused. A malformed expression is a 400 naming the position.

use crate::error::ConsulError;
use serde_json::Value;

/// Longest expression accepted: parsing and evaluation are linear in it.
const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses and `not`.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Equal(Vec<String>, String),
    NotEqual(Vec<String>, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Empty(Vec<String>),
    NotEmpty(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(&'static str),
    Open,
    Close,
}

fn bad(text: &str, at: usize, why: &str) -> ConsulError {
    ConsulError::BadRequest(format!(
        "Failed to create boolean expression evaluator: {why} at position {at} in filter {text:?}"
    ))
}

fn tokens(text: &str) -> Result<Vec<(usize, Token)>, ConsulError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((at, Token::Open));
                i += 1;
            }
            ')' => {
                out.push((at, Token::Close));
                i += 1;
            }
            '=' | '!' => {
                let next = chars.get(i + 1).map(|p| p.1);
                if next != Some('=') {
                    return Err(bad(text, at, "expected == or !="));
                }
                out.push((at, Token::Op(if c == '=' { "==" } else { "!=" })));
                i += 2;
            }
            '"' | '`' => {
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    let Some(&(_, d)) = chars.get(j) else {
                        return Err(bad(text, at, "unterminated string"));
                    };
                    if d == c {
                        break;
                    }
                    if d == '\\'
                        && c == '"'
                        && let Some(&(_, e)) = chars.get(j + 1)
                    {
                        value.push(e);
                        j += 2;
                        continue;
                    }
                    value.push(d);
                    j += 1;
                }
                out.push((at, Token::Quoted(value)));
                i = j + 1;
            }
            c if c.is_alphanumeric() || "_-.:/".contains(c) => {
                let mut j = i;
                while j < chars.len()
                    && (chars[j].1.is_alphanumeric() || "_-.:/".contains(chars[j].1))
                {
                    j += 1;
                }
                let word: String = chars[i..j].iter().map(|p| p.1).collect();
                out.push((at, Token::Word(word)));
                i = j;
            }
            _ => return Err(bad(text, at, &format!("unexpected {c:?}"))),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.text.len(), |t| t.0)
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some((_, Token::Word(w))) if w == word)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).map(|t| t.1.clone());
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, ConsulError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ConsulError> {
        let mut left = self.not()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ConsulError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(bad(self.text, self.at(), "expression nested too deeply"));
        }
        let e = if self.peek_word("not") {
            self.pos += 1;
            Expr::Not(Box::new(self.not()?))
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Ok(e)
    }

    fn value(&mut self) -> Result<String, ConsulError> {
        let at = self.at();
        match self.next() {
            Some(Token::Quoted(v) | Token::Word(v)) => Ok(v),
            _ => Err(bad(self.text, at, "expected a value")),
        }
    }

    fn selector(&mut self) -> Result<Vec<String>, ConsulError> {
        let at = self.at();
        match self.next() {
            Some(Token::Word(w)) => Ok(w.split('.').map(str::to_string).collect()),
            _ => Err(bad(self.text, at, "expected a selector")),
        }
    }

    fn primary(&mut self) -> Result<Expr, ConsulError> {
        let at = self.at();
        match self.tokens.get(self.pos).map(|t| t.1.clone()) {
            Some(Token::Open) => {
                self.pos += 1;
                let e = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(e),
                    _ => Err(bad(self.text, self.at(), "expected )")),
                }
            }
            Some(Token::Quoted(v)) => {
                // value (not) in selector
                self.pos += 1;
                let negate = self.peek_word("not");
                if negate {
                    self.pos += 1;
                }
                if !self.peek_word("in") {
                    return Err(bad(self.text, self.at(), "expected in"));
                }
                self.pos += 1;
                let s = self.selector()?;
                Ok(if negate {
                    Expr::NotIn(v, s)
                } else {
                    Expr::In(v, s)
                })
            }
            Some(Token::Word(_)) => {
                let s = self.selector()?;
                let op_at = self.at();
                match self.next() {
                    Some(Token::Op("==")) => Ok(Expr::Equal(s, self.value()?)),
                    Some(Token::Op("!=")) => Ok(Expr::NotEqual(s, self.value()?)),
                    Some(Token::Word(w)) if w == "is" => {
                        let negate = self.peek_word("not");
                        if negate {
                            self.pos += 1;
                        }
                        if !self.peek_word("empty") {
                            return Err(bad(self.text, self.at(), "expected empty"));
                        }
                        self.pos += 1;
                        Ok(if negate {
                            Expr::NotEmpty(s)
                        } else {
                            Expr::Empty(s)
                        })
                    }
                    Some(Token::Word(w)) if w == "contains" => Ok(Expr::In(self.value()?, s)),
                    Some(Token::Word(w)) if w == "not" => {
                        if !self.peek_word("contains") {
                            return Err(bad(self.text, self.at(), "expected contains"));
                        }
                        self.pos += 1;
                        Ok(Expr::NotIn(self.value()?, s))
                    }
                    Some(Token::Word(w)) if w == "matches" => Err(bad(
                        self.text,
                        op_at,
                        "matches (regular expressions) is not supported by weft",
                    )),
                    _ => Err(bad(self.text, op_at, "expected an operator")),
                }
            }
            _ => Err(bad(self.text, at, "expected an expression")),
        }
    }
}

pub(crate) fn parse(text: &str) -> Result<Expr, ConsulError> {
    if text.len() > MAX_LEN {
        return Err(ConsulError::BadRequest(format!(
            "filter is {} bytes, over the limit of {MAX_LEN}",
            text.len()
        )));
    }
    let mut p = Parser {
        text,
        tokens: tokens(text)?,
        pos: 0,
        depth: 0,
    };
    let e = p.or()?;
    if p.pos < p.tokens.len() {
        return Err(bad(text, p.at(), "unexpected trailing input"));
    }
    Ok(e)
}

fn select<'v>(item: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(item, |v, key| v.get(key))
}

fn scalar_eq(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Number(n) => n.to_string() == want,
        Value::Bool(b) => b.to_string() == want,
        Value::Null => want.is_empty(),
        _ => false,
    }
}

impl Expr {
    pub(crate) fn matches(&self, item: &Value) -> bool {
        match self {
            Self::And(a, b) => a.matches(item) && b.matches(item),
            Self::Or(a, b) => a.matches(item) || b.matches(item),
            Self::Not(e) => !e.matches(item),
            Self::Equal(s, v) => select(item, s).is_some_and(|x| scalar_eq(x, v)),
            Self::NotEqual(s, v) => !select(item, s).is_some_and(|x| scalar_eq(x, v)),
            Self::In(v, s) => match select(item, s) {
                Some(Value::Array(items)) => items.iter().any(|x| scalar_eq(x, v)),
                Some(Value::String(text)) => text.contains(v.as_str()),
                Some(Value::Object(map)) => map.contains_key(v),
                _ => false,
            },
            Self::NotIn(v, s) => !Self::In(v.clone(), s.clone()).matches(item),
            Self::Empty(s) => match select(item, s) {
                None | Some(Value::Null) => true,
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::String(t)) => t.is_empty(),
                Some(_) => false,
            },
            Self::NotEmpty(s) => !Self::Empty(s.clone()).matches(item),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn consuls_filter_forms() {
        let item = json!({"Node": "n1", "Service": {"Tags": ["prod", "tag:foo:1"]}, "Status": "passing", "ServiceTags": ["prod"]});
        let t = |f: &str| parse(f).unwrap().matches(&item);
        assert!(t(r#""tag:foo:1" in Service.Tags"#));
        assert!(!t(r#""tag:does:not:exist" in Service.Tags"#));
        assert!(t(r#"Node == "n1""#));
        assert!(t("Status == `passing`"));
        assert!(t("Node != `` "));
        assert!(t(r#""prod" in ServiceTags and Node == n1"#));
        assert!(t(r#"not (Node == "n2") or Status == x"#));
        assert!(t("Service.Tags is not empty"));
        assert!(t(r#"Service.Tags contains "prod""#));
        assert!(t(r#"Service.Tags not contains "dev""#));
        for broken in [
            "not a valid expression((",
            "Node ==",
            "(Node == \"a\"",
            "Node = x",
            "\"x\" on Y",
        ] {
            assert!(parse(broken).is_err(), "{broken}");
        }
        assert!(parse(&"(".repeat(100)).is_err());
    }
}
