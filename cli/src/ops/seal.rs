//! Backup files, sealed as a whole: AES-256-GCM in the STREAM construction
//! (`aead::stream`, big-endian 32-bit counter) over 64 KiB chunks. Each chunk
//! is authenticated with its position and whether it is the last, so a file
//! cut short, reordered or spliced from two files does not open; the
//! associated data names the region, the backup and the file, so a sealed
//! file moved to another name or backup does not open either.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aead::stream::{DecryptorBE32, EncryptorBE32};
use aead::{KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use amanah_functions::crypto::keys::KeyBytes;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"AMNHBK01";
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
/// STREAM's nonce prefix: 12 bytes less the 4-byte counter and 1-byte flag.
const PREFIX: usize = 7;

/// Where a sealed file belongs: bound into every chunk.
pub fn binding(region: &str, backup_id: &str, name: &str) -> Vec<u8> {
    let mut aad = b"amanah.backup.v1".to_vec();
    for part in [region, backup_id, name] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// What sealing produced.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// Size of the sealed file.
    pub bytes: u64,
    /// Hex SHA-256 of the sealed file (what the manifest lists).
    pub sha256: String,
    /// Hex SHA-256 of the plaintext (what a restore must get back).
    pub plain_sha256: String,
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Seals `from` into the new file `to`.
pub fn seal_file(
    key: &KeyBytes,
    aad: &[u8],
    nonce_prefix: [u8; PREFIX],
    from: &Path,
    to: &Path,
) -> io::Result<Sealed> {
    let cipher = Aes256Gcm::new(key.expose().into());
    let mut enc = EncryptorBE32::from_aead(cipher, (&nonce_prefix).into());
    let mut input = File::open(from)?;
    let mut out = create_private(to)?;
    let (mut sealed_hash, mut plain_hash) = (Sha256::new(), Sha256::new());
    let mut write = |bytes: &[u8], out: &mut File| -> io::Result<()> {
        sealed_hash.update(bytes);
        out.write_all(bytes)
    };
    write(MAGIC, &mut out)?;
    write(&nonce_prefix, &mut out)?;
    let mut total = (MAGIC.len() + PREFIX) as u64;
    let mut cur = vec![0u8; CHUNK];
    let mut next = vec![0u8; CHUNK];
    let mut n = read_full(&mut input, &mut cur)?;
    let fail = |_| io::Error::other("sealing failed");
    loop {
        let m = if n == CHUNK {
            read_full(&mut input, &mut next)?
        } else {
            0
        };
        plain_hash.update(&cur[..n]);
        let payload = Payload {
            msg: &cur[..n],
            aad,
        };
        if m == 0 {
            let ct = enc.encrypt_last(payload).map_err(fail)?;
            write(&ct, &mut out)?;
            total += ct.len() as u64;
            break;
        }
        let ct = enc.encrypt_next(payload).map_err(fail)?;
        write(&ct, &mut out)?;
        total += ct.len() as u64;
        std::mem::swap(&mut cur, &mut next);
        n = m;
    }
    out.sync_all()?;
    Ok(Sealed {
        bytes: total,
        sha256: hex(sealed_hash.finalize().as_slice()),
        plain_sha256: hex(plain_hash.finalize().as_slice()),
    })
}

/// Opens the sealed file `from` into the new file `to`. Refuses a file
/// whose SHA-256 is not `sha256`, and any chunk that does not authenticate;
/// returns the plaintext's SHA-256. On failure `to` is removed.
pub fn open_file(
    key: &KeyBytes,
    aad: &[u8],
    sha256: &str,
    from: &Path,
    to: &Path,
) -> Result<String, String> {
    let result = (|| {
        let mut input = File::open(from).map_err(|e| format!("cannot read it: {e}"))?;
        let mut sealed_hash = Sha256::new();
        let mut header = [0u8; 8 + PREFIX];
        let got = read_full(&mut input, &mut header).map_err(|e| e.to_string())?;
        if got != header.len() || &header[..8] != MAGIC {
            return Err("not an Amanah backup file".to_owned());
        }
        sealed_hash.update(header);
        let prefix: [u8; PREFIX] = header[8..].try_into().map_err(|_| "bad header")?;
        let cipher = Aes256Gcm::new(key.expose().into());
        let mut dec = DecryptorBE32::from_aead(cipher, (&prefix).into());
        let mut out = create_private(to).map_err(|e| format!("cannot create the output: {e}"))?;
        let mut plain_hash = Sha256::new();
        let mut cur = vec![0u8; CHUNK + TAG];
        let mut next = vec![0u8; CHUNK + TAG];
        let mut n = read_full(&mut input, &mut cur).map_err(|e| e.to_string())?;
        let refused = || "it does not open with this key (another key, or altered)".to_owned();
        let mut write = |pt: Vec<u8>, out: &mut File| -> Result<(), String> {
            plain_hash.update(&pt);
            out.write_all(&pt).map_err(|e| e.to_string())
        };
        loop {
            let m = if n == CHUNK + TAG {
                read_full(&mut input, &mut next).map_err(|e| e.to_string())?
            } else {
                0
            };
            sealed_hash.update(&cur[..n]);
            if m == 0 {
                break;
            }
            let payload = Payload {
                msg: &cur[..n],
                aad,
            };
            write(dec.decrypt_next(payload).map_err(|_| refused())?, &mut out)?;
            std::mem::swap(&mut cur, &mut next);
            n = m;
        }
        let payload = Payload {
            msg: &cur[..n],
            aad,
        };
        write(dec.decrypt_last(payload).map_err(|_| refused())?, &mut out)?;
        if hex(sealed_hash.finalize().as_slice()) != sha256 {
            return Err("its checksum is not the manifest's".to_owned());
        }
        out.sync_all().map_err(|e| e.to_string())?;
        Ok(hex(plain_hash.finalize().as_slice()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(to);
    }
    result
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: u8) -> KeyBytes {
        KeyBytes::new([k; 32])
    }

    fn round_trip(len: usize) {
        let dir = tempfile::tempdir().unwrap();
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (a, s, b) = (
            dir.path().join("a"),
            dir.path().join("s"),
            dir.path().join("b"),
        );
        std::fs::write(&a, &plain).unwrap();
        let aad = binding("pk", "id1", "clinics/x.db");
        let sealed = seal_file(&key(1), &aad, [3; 7], &a, &s).unwrap();
        assert_eq!(sealed.bytes, std::fs::metadata(&s).unwrap().len());
        let got = open_file(&key(1), &aad, &sealed.sha256, &s, &b).unwrap();
        assert_eq!(got, sealed.plain_sha256);
        assert_eq!(std::fs::read(&b).unwrap(), plain);
    }

    #[test]
    fn files_of_any_length_round_trip() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            round_trip(len);
        }
    }

    #[test]
    fn a_cut_altered_or_moved_file_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let (a, s) = (dir.path().join("a"), dir.path().join("s"));
        std::fs::write(&a, vec![7u8; 2 * CHUNK + 10]).unwrap();
        let aad = binding("pk", "id1", "clinics/x.db");
        seal_file(&key(1), &aad, [3; 7], &a, &s).unwrap();
        let bytes = std::fs::read(&s).unwrap();
        let try_open = |bytes: &[u8], key: &KeyBytes, aad: &[u8]| {
            let t = dir.path().join("t");
            let o = dir.path().join("o");
            std::fs::write(&t, bytes).unwrap();
            let sum = hex(Sha256::digest(bytes).as_slice());
            let r = open_file(key, aad, &sum, &t, &o);
            assert!(!o.exists() || r.is_ok());
            r
        };
        assert!(try_open(&bytes, &key(1), &aad).is_ok());
        // Cut at a chunk boundary: the last chunk is missing.
        let cut = 8 + 7 + CHUNK + TAG;
        assert!(try_open(&bytes[..cut], &key(1), &aad).is_err());
        // One bit changed.
        let mut t = bytes.clone();
        t[100] ^= 1;
        assert!(try_open(&t, &key(1), &aad).is_err());
        // Another key, another file name, another backup.
        assert!(try_open(&bytes, &key(2), &aad).is_err());
        assert!(try_open(&bytes, &key(1), &binding("pk", "id1", "clinics/y.db")).is_err());
        assert!(try_open(&bytes, &key(1), &binding("pk", "id2", "clinics/x.db")).is_err());
        // Right contents, but not what the manifest listed.
        let o = dir.path().join("o2");
        assert!(open_file(&key(1), &aad, "00", &s, &o)
            .unwrap_err()
            .contains("checksum"));
        assert!(!o.exists());
    }
}
