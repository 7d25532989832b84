//! Token parsing: any text is refused without a panic, for every kind of
//! token; only the exact token issued verifies (no malleable encoding).
#![no_main]

use amanah_functions::crypto::keys::{KeyBytes, RootKey, RootKeyring};
use amanah_functions::token::{Subject, TokenKeys, TokenKind};

const NOW: i64 = 1_795_392_000;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let keys = TokenKeys::new(&RootKeyring::single(RootKey::new(
        "pk",
        1,
        KeyBytes::new([9; 32]),
    )));
    let subject = Subject {
        user: "usr_fuzz".into(),
        clinic: "pk_fuzzclinic".into(),
        session: "ses_fuzz".into(),
    };
    let text = String::from_utf8_lossy(data);
    for kind in [
        TokenKind::Session,
        TokenKind::MfaChallenge,
        TokenKind::Staff,
        TokenKind::Support,
    ] {
        let issued = keys.issue(kind, &subject, NOW, 900);
        if keys.verify(kind, &text, NOW).is_ok() {
            assert_eq!(text, issued, "only the issued token verifies");
        }
    }
});
