#![no_main]
//! Any bytes given to the HCL and JSON readers produce a model or errors, never a panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(model) = weft_model::parse_hcl("fuzz.hcl", text) {
            let _ = weft_model::validate(&model);
        }
        let _ = weft_model::parse_json("fuzz.json", text);
    }
});
