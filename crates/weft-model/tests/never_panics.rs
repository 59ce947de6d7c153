//! Bad input never panics: arbitrary text and mutilated documents only produce errors.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use proptest::prelude::*;
use weft_model::{parse_hcl, parse_json, validate};

const EXAMPLE: &str = include_str!("../../../examples/three-tier.hcl");

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(text in ".{0,400}") {
        if let Ok(model) = parse_hcl("fuzz.hcl", &text) {
            let _ = validate(&model);
        }
        let _ = parse_json("fuzz.json", &text);
    }

    /// The example with a slice cut out and random text put in its place.
    #[test]
    fn mutilated_example(start in 0..EXAMPLE.len(), len in 0usize..40, insert in "[ -~\n]{0,12}") {
        let start = (0..=start).rev().find(|i| EXAMPLE.is_char_boundary(*i)).unwrap();
        let mut end = (start + len).min(EXAMPLE.len());
        while !EXAMPLE.is_char_boundary(end) {
            end -= 1;
        }
        let text = format!("{}{insert}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
        match parse_hcl("fuzz.hcl", &text) {
            Ok(model) => {
                let _ = validate(&model);
            }
            Err(errors) => {
                prop_assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    prop_assert_eq!(&e.loc.file, "fuzz.hcl");
                    prop_assert!(e.loc.line >= 1, "{}", e);
                }
            }
        }
    }

    /// The example's JSON twin, mutilated the same way: errors carry the file, and a
    /// document that still parses has a line for every object.
    #[test]
    fn mutilated_json_twin(start in 0usize..4000, len in 0usize..40, insert in "[ -~\n]{0,12}") {
        let json = serde_json::to_string_pretty(&parse_hcl("x.hcl", EXAMPLE).unwrap()).unwrap();
        let start = start.min(json.len());
        let end = (start + len).min(json.len());
        let text = format!("{}{insert}{}", &json[..start], &json[end..]);
        match parse_json("fuzz.json", &text) {
            Ok(model) => {
                let _ = validate(&model);
                for t in model.tenants.values() {
                    for ap in t.app_profiles.values() {
                        for e in ap.epgs.values() {
                            prop_assert_eq!(&e.loc.file, "fuzz.json");
                            prop_assert!(e.loc.line >= 1);
                        }
                    }
                }
            }
            Err(errors) => {
                for e in &errors.0 {
                    prop_assert_eq!(&e.loc.file, "fuzz.json");
                }
            }
        }
    }
}
