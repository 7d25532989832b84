//! The field-ciphertext decoder: any bytes are refused or opened without a
//! panic, and what is sealed opens to itself, for that row only.
#![no_main]

use amanah_functions::crypto::field::{Field, FieldCipher};
use amanah_functions::crypto::keys::{DataKey, KeyBytes};

const NAME: Field = Field::new("patients", "name");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dek = DataKey {
        version: 1,
        key: KeyBytes::new([7; 32]),
    };
    let cipher = FieldCipher::new("pk_fuzzclinic", &dek);
    let _ = cipher.open(NAME, "pat_1", data);
    let sealed = cipher.seal(NAME, "pat_1", data, [3; 12]);
    assert_eq!(
        cipher.open(NAME, "pat_1", &sealed).ok().as_deref(),
        Some(data)
    );
    assert!(
        cipher.open(NAME, "pat_2", &sealed).is_err(),
        "bound to its row"
    );
    let other = FieldCipher::new("pk_otherclinic", &dek);
    assert!(
        other.open(NAME, "pat_1", &sealed).is_err(),
        "bound to its clinic"
    );
});
