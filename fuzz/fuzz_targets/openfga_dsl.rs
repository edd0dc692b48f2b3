//! An OpenFGA model in the modeling language. A model that parses must print as JSON and as
//! the modeling language again, and both must parse back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_rebac::Model;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(model) = Model::from_dsl(text) else {
        return;
    };
    let json = model.to_json_string();
    if let Err(errors) = Model::from_json(&json) {
        panic!("the model's JSON does not parse back: {errors:?}\n{json}");
    }
    let dsl = model.to_dsl();
    if let Err(errors) = Model::from_dsl(&dsl) {
        panic!("the model's DSL does not parse back: {errors:?}\n{dsl}");
    }
});
