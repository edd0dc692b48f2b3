//! An OpenFGA model in JSON. A model that parses must print as JSON and parse back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_rebac::Model;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(model) = Model::from_json(text) else {
        return;
    };
    let json = model.to_json_string();
    if let Err(errors) = Model::from_json(&json) {
        panic!("the model's JSON does not parse back: {errors:?}\n{json}");
    }
    let _ = model.to_dsl();
});
