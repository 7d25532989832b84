//! A stand-in for the Spin runtime's variables provider, for tests only.
//!
//! `wasmtime serve` cannot provide Spin's `fermyon:spin/variables` import.
//! This component exports that interface and answers each `get(name)` from
//! the environment variable `SPIN_VARIABLE_<NAME>` — the same names Spin's
//! own environment provider reads — and is composed into the Amanah
//! component (`wasm-tools compose`) by `cargo xtask up --host spin`.
//! Variable names are checked as Spin checks them (lower-case letters,
//! digits and underscores, starting with a letter).

wit_bindgen::generate!({
    world: "provider",
    path: "wit",
});

use exports::fermyon::spin::variables::{Error, Guest};

struct Provider;

impl Guest for Provider {
    fn get(name: String) -> Result<String, Error> {
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::InvalidName(name));
        }
        let key = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        std::env::vars()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .ok_or(Error::Undefined(name))
    }
}

export!(Provider);
