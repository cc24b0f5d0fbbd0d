//! The installation's certificate authority: one ECDSA P-256 key per installation, made once,
//! kept 0600, and the public certificate exported for containers to trust.
//!
//! Owns the two files under the agent's state directory and nothing else: `ca-key.pem` (PKCS#8,
//! 0600, created atomically and never replaced) and `ca.pem` (the certificate, 0644, the file
//! sessions mount). Both go through [`crate::private_fs`], so the directory is 0700 and ours, and
//! nothing is read or written through a symlink. A key file others could read is refused rather
//! than repaired: a key that leaked once stays leaked. When `ca.pem` is missing, does not match
//! the key, or is near its end, it is issued again from the same key and name, so certificates
//! already trusted from the old file keep validating leaves. Issuing leaves is `tls::leaf`'s job.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData as _,
};
use rustls::pki_types::CertificateDer;

use crate::private_fs::{PrivateDir, PrivateFsError};

/// The private key, PKCS#8 PEM, mode 0600.
pub const KEY_FILE: &str = "ca-key.pem";
/// The public certificate, PEM, mode 0644: what containers trust.
pub const CERT_FILE: &str = "ca.pem";

/// How long a newly issued CA certificate is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// A CA certificate this close to its end is issued again (same key, same name).
const CA_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Start validity this far back, for clients whose clocks run behind.
const BACKDATE: Duration = Duration::from_secs(24 * 60 * 60);

/// Why the CA could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot keep the CA in its state directory")]
    Storage(#[from] PrivateFsError),
    #[error("{} is not a PEM ECDSA P-256 private key", .path.display())]
    InvalidKey {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot generate or sign the CA certificate")]
    Generate(#[source] rcgen::Error),
}

/// The loaded CA: what `tls::leaf` signs with and what containers are given to trust.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    cert_path: PathBuf,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("CertificateAuthority")
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads the CA from `state_dir`, creating the directory (0700), the key and the certificate
    /// when they are missing.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, CaError> {
        let dir = PrivateDir::open_or_create(state_dir)?;
        let key = match dir.read_private(KEY_FILE)? {
            Some(pem) => parse_key(&dir, &pem)?,
            None => {
                let key =
                    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
                match dir.create_new(KEY_FILE, key.serialize_pem().as_bytes(), 0o600) {
                    Ok(()) => key,
                    // Another process made one first: use theirs, so there is one CA.
                    Err(PrivateFsError::AlreadyExists { .. }) => {
                        let pem = dir.read_private(KEY_FILE)?.unwrap_or_default();
                        parse_key(&dir, &pem)?
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        };

        let stored = dir.read_public(CERT_FILE)?;
        let (issuer, cert_der, cert_pem) = match stored.and_then(|pem| usable_cert(pem, &key)) {
            Some((der, pem)) => {
                let issuer = Issuer::from_ca_cert_der(&der, key).map_err(CaError::Generate)?;
                (issuer, der, pem)
            }
            None => {
                let params = ca_params(&key);
                let cert = params.self_signed(&key).map_err(CaError::Generate)?;
                let pem = cert.pem();
                dir.replace(CERT_FILE, pem.as_bytes(), 0o644)?;
                (Issuer::new(params, key), cert.der().clone(), pem)
            }
        };
        Ok(Self {
            issuer,
            cert_der,
            cert_pem,
            cert_path: dir.path().join(CERT_FILE),
        })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate, PEM: the contents of [`Self::cert_path`].
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `ca.pem`, the file to mount into containers.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// What signs leaves.
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

fn parse_key(dir: &PrivateDir, pem: &[u8]) -> Result<KeyPair, CaError> {
    let invalid = |source| CaError::InvalidKey {
        path: dir.path().join(KEY_FILE),
        source,
    };
    let text = std::str::from_utf8(pem).map_err(|_| invalid(rcgen::Error::CouldNotParseKeyPair))?;
    KeyPair::from_pem_and_sign_algo(text, &PKCS_ECDSA_P256_SHA256).map_err(invalid)
}

/// The stored certificate, if it parses, is a CA, carries `key`'s public key and is not near its
/// end; `None` means: issue it again.
fn usable_cert(pem: Vec<u8>, key: &KeyPair) -> Option<(CertificateDer<'static>, String)> {
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).ok()?;
    let renew_at = SystemTime::now() + CA_RENEW_BEFORE;
    let renew_at = renew_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let fresh = i64::try_from(renew_at).is_ok_and(|at| cert.validity().not_after.timestamp() > at);
    let ours = cert.tbs_certificate.subject_pki.raw == key.subject_public_key_info().as_slice();
    if !(cert.is_ca() && ours && fresh) {
        return None;
    }
    let pem = String::from_utf8(pem).ok()?;
    Some((CertificateDer::from(block.contents.clone()), pem))
}

/// The CA's name carries a digest of its public key, so two installations' CAs never share a name
/// and the name can be made again from the key alone.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let fingerprint = params.key_identifier(key);
    let short: String = fingerprint
        .iter()
        .take(4)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "hh");
    name.push(DnType::CommonName, format!("hh proxy CA {short}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + CA_VALIDITY).into();
    params
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use super::*;
    use crate::private_fs::mode;

    #[test]
    fn a_new_ca_is_stored_with_private_key_0600_dir_0700_and_public_cert_0644() {
        let temp = tempfile::tempdir().unwrap();
        let state = temp.path().join("state");
        let ca = CertificateAuthority::load_or_create(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&state.join(CERT_FILE)), 0o644);
        assert_eq!(ca.cert_path(), state.join(CERT_FILE));
        assert_eq!(
            std::fs::read_to_string(ca.cert_path()).unwrap(),
            ca.cert_pem()
        );

        let (_, cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        assert!(cert.is_ca());
        // id-ecPublicKey on the P-256 curve.
        let algorithm = &cert.public_key().algorithm;
        assert_eq!(algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1");
        let curve = algorithm.parameters.as_ref().unwrap().as_oid().unwrap();
        assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7");
        let subject = cert.subject().to_string();
        assert!(subject.contains("CN=hh proxy CA "), "{subject}");
    }

    #[test]
    fn reloading_gives_the_same_certificate() {
        let temp = tempfile::tempdir().unwrap();
        let first = CertificateAuthority::load_or_create(temp.path()).unwrap();
        let second = CertificateAuthority::load_or_create(temp.path()).unwrap();
        assert_eq!(first.cert_der(), second.cert_der());
        assert_eq!(first.cert_pem(), second.cert_pem());
    }

    #[test]
    fn a_lost_or_foreign_certificate_is_issued_again_from_the_same_key_and_name() {
        let temp = tempfile::tempdir().unwrap();
        let first = CertificateAuthority::load_or_create(temp.path()).unwrap();
        let key_before = std::fs::read(temp.path().join(KEY_FILE)).unwrap();
        let other = tempfile::tempdir().unwrap();
        let foreign = CertificateAuthority::load_or_create(other.path()).unwrap();

        for replacement in [
            None,
            Some(foreign.cert_pem().to_owned()),
            Some("garbage".to_owned()),
        ] {
            let cert_file = temp.path().join(CERT_FILE);
            match &replacement {
                None => std::fs::remove_file(&cert_file).unwrap(),
                Some(text) => std::fs::write(&cert_file, text).unwrap(),
            }
            let again = CertificateAuthority::load_or_create(temp.path()).unwrap();
            let (_, old) = x509_parser::parse_x509_certificate(first.cert_der()).unwrap();
            let (_, new) = x509_parser::parse_x509_certificate(again.cert_der()).unwrap();
            assert_eq!(old.subject(), new.subject(), "{replacement:?}");
            assert_eq!(
                old.public_key().raw,
                new.public_key().raw,
                "{replacement:?}"
            );
            assert_eq!(
                std::fs::read_to_string(&cert_file).unwrap(),
                again.cert_pem()
            );
        }
        assert_eq!(
            std::fs::read(temp.path().join(KEY_FILE)).unwrap(),
            key_before
        );
    }

    #[test]
    fn unsafe_key_files_are_refused_with_their_path() {
        /// Puts something unsafe at the key path of a fresh state directory.
        type Prepare = fn(&Path);
        let cases: [(&str, Prepare, &str); 4] = [
            (
                "symlink at the key path",
                |dir| symlink("/etc/hostname", dir.join(KEY_FILE)).unwrap(),
                "is a symbolic link",
            ),
            (
                "group-readable key",
                |dir| {
                    std::fs::write(dir.join(KEY_FILE), b"x").unwrap();
                    std::fs::set_permissions(
                        dir.join(KEY_FILE),
                        std::fs::Permissions::from_mode(0o640),
                    )
                    .unwrap();
                },
                "lets other users read or write it",
            ),
            (
                "world-readable key",
                |dir| {
                    std::fs::write(dir.join(KEY_FILE), b"x").unwrap();
                    std::fs::set_permissions(
                        dir.join(KEY_FILE),
                        std::fs::Permissions::from_mode(0o604),
                    )
                    .unwrap();
                },
                "lets other users read or write it",
            ),
            (
                "key that is not a key",
                |dir| {
                    std::fs::write(dir.join(KEY_FILE), b"not a key").unwrap();
                    std::fs::set_permissions(
                        dir.join(KEY_FILE),
                        std::fs::Permissions::from_mode(0o600),
                    )
                    .unwrap();
                },
                "is not a PEM ECDSA P-256 private key",
            ),
        ];
        for (name, prepare, message) in cases {
            let temp = tempfile::tempdir().unwrap();
            std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
            prepare(temp.path());
            let error = CertificateAuthority::load_or_create(temp.path()).unwrap_err();
            let chain = match std::error::Error::source(&error) {
                Some(source) => format!("{error}: {source}"),
                None => error.to_string(),
            };
            assert!(chain.contains(message), "{name}: {chain}");
            let key_path = temp.path().join(KEY_FILE).display().to_string();
            assert!(chain.contains(&key_path), "{name}: {chain}");
        }
    }
}
