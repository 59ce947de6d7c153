//! Where the keys of a JSON document are: serde gives a model without positions, so the
//! JSON twin of a document is scanned once more for the line of every object key.

use std::collections::BTreeMap;

/// The keys of one JSON object, each with its line and, when its value is an object, the
/// keys of that object.
#[derive(Debug, Default)]
pub(crate) struct KeyLines {
    children: BTreeMap<String, KeyLine>,
}

#[derive(Debug, Default)]
pub(crate) struct KeyLine {
    /// 1-based line of the key.
    pub line: u32,
    pub value: KeyLines,
}

impl KeyLines {
    /// Scans a JSON text; `None` when it is not a JSON value (serde said so already) or
    /// nests deeper than serde accepts.
    pub fn scan(text: &str) -> Option<KeyLines> {
        let mut s = Scanner {
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
        };
        s.skip_ws();
        let keys = s.value(0)?;
        s.skip_ws();
        (s.pos == s.bytes.len()).then_some(keys)
    }

    pub fn get(&self, key: &str) -> Option<&KeyLine> {
        self.children.get(key)
    }
}

/// serde_json refuses more than 128 levels; deeper text never gets here.
const MAX_DEPTH: usize = 256;

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u32,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b'\n' => self.line = self.line.saturating_add(1),
                b' ' | b'\t' | b'\r' => {}
                _ => break,
            }
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Any value; the keys of an object, nothing for the others.
    fn value(&mut self, depth: usize) -> Option<KeyLines> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.object(depth),
            b'[' => {
                self.pos += 1;
                self.skip_ws();
                if self.eat(b']').is_some() {
                    return Some(KeyLines::default());
                }
                loop {
                    self.skip_ws();
                    self.value(depth + 1)?;
                    self.skip_ws();
                    if self.eat(b',').is_none() {
                        self.eat(b']')?;
                        return Some(KeyLines::default());
                    }
                }
            }
            b'"' => {
                self.string()?;
                Some(KeyLines::default())
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                let start = self.pos;
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.pos += 1;
                }
                (self.pos > start).then(KeyLines::default)
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<KeyLines> {
        self.eat(b'{')?;
        let mut keys = KeyLines::default();
        self.skip_ws();
        if self.eat(b'}').is_some() {
            return Some(keys);
        }
        loop {
            self.skip_ws();
            let line = self.line;
            let key = self.string()?;
            self.skip_ws();
            self.eat(b':')?;
            self.skip_ws();
            let value = self.value(depth + 1)?;
            // A repeated key: serde keeps the last value, so does this.
            keys.children.insert(key, KeyLine { line, value });
            self.skip_ws();
            if self.eat(b',').is_none() {
                self.eat(b'}')?;
                return Some(keys);
            }
        }
    }

    /// A string literal, unescaped.
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let escaped = self.peek()?;
                    self.pos += 1;
                    let c = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b'\n' => return None,
                _ => out.push(b),
            }
        }
    }

    /// The four hex digits after `\u`, and a low surrogate's after a high one.
    fn unicode_escape(&mut self) -> Option<char> {
        let high = self.hex4()?;
        if !(0xD800..0xDC00).contains(&high) {
            return Some(char::from_u32(high).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
            return Some(char::REPLACEMENT_CHARACTER);
        }
        self.pos += 2;
        let low = self.hex4()?;
        let c = (0xDC00..0xE000)
            .contains(&low)
            .then(|| char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)))
            .flatten();
        Some(c.unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        let value = u32::from_str_radix(text, 16).ok()?;
        self.pos += 4;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::KeyLines;

    fn line(keys: &KeyLines, path: &[&str]) -> Option<u32> {
        let (last, parents) = path.split_last()?;
        let mut at = keys;
        for key in parents {
            at = &at.get(key)?.value;
        }
        at.get(last).map(|k| k.line)
    }

    #[test]
    fn every_key_has_its_line() {
        let text = "{\n  \"a\": {\n    \"b\": [1, {\"x\": 2}, \"s\"],\n    \"c\\\"d\": {\n      \"\\u00e9\\ud83d\\ude00\": null\n    }\n  },\n  \"e\": -1.5e3\n}\n";
        let keys = KeyLines::scan(text).expect("valid JSON");
        assert_eq!(line(&keys, &["a"]), Some(2));
        assert_eq!(line(&keys, &["a", "b"]), Some(3));
        assert_eq!(line(&keys, &["a", "c\"d"]), Some(4));
        assert_eq!(line(&keys, &["a", "c\"d", "é😀"]), Some(5));
        assert_eq!(line(&keys, &["e"]), Some(8));
        assert_eq!(line(&keys, &["a", "x"]), None);
    }

    #[test]
    fn broken_text_is_none_never_a_panic() {
        for text in [
            "",
            "{",
            "{\"a\" 1}",
            "[1,",
            "\"\\u12",
            "{\"a\":1}}",
            "\"\\ud800\\u",
        ] {
            assert!(KeyLines::scan(text).is_none(), "{text:?}");
        }
        let deep = "[".repeat(10_000);
        assert!(KeyLines::scan(&deep).is_none());
    }
}
