//! Kerberos credentials from a keytab, private to one connection.
//!
//! `KRB5_CLIENT_KTNAME`/`KRB5CCNAME` are process-wide, so several connections with different keytabs
//! would share one identity. MIT krb5's `gss_acquire_cred_from()` takes a credential store per call
//! instead: each connection gets its own client keytab file and its own in-memory ticket cache.
//! Tickets are acquired at the first bind, once the sync has chosen its DC: with no krb5.conf of
//! the user's, that DC is the KDC. The GSSAPI library blocks on files and the KDC, so
//! [`KerberosCredential::bind_credential`] runs it on a blocking thread.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::ptr;

use libgssapi_sys as sys;

use crate::domain::keytab::{self, KeytabError};

/// Why Kerberos credentials could not be acquired.
#[derive(Debug, thiserror::Error)]
pub enum KerberosError {
    #[error("keytab invalid: {0}")]
    Keytab(#[from] KeytabError),
    #[error("cannot stage the keytab for GSSAPI: {0}")]
    StageKeytab(std::io::Error),
    #[error("cannot acquire Kerberos credentials for {principal}: {detail}")]
    AcquireCredentials { principal: String, detail: String },
}

/// GSSAPI credentials of one connection, and the keytab file they are read from.
pub struct KerberosCredential {
    principal: String,
    keytab_value: CString,
    ccache_value: CString,
    /// Acquired at the first bind; MIT renews its tickets from the client keytab after that.
    cred: std::sync::Mutex<Option<libgssapi::credential::Cred>>,
    // MIT reads the client keytab lazily (on each ticket request), so the file lives as long as the
    // credential.
    _keytab_dir: tempfile::TempDir,
}

impl std::fmt::Debug for KerberosCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KerberosCredential").field("principal", &self.principal).finish_non_exhaustive()
    }
}

/// OID 1.2.840.113554.1.2.2.1, GSS_KRB5_NT_PRINCIPAL_NAME.
const KRB5_PRINCIPAL_NAME_OID: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";

impl KerberosCredential {
    /// Checks the keytab (exactly one principal, matching `principal` when given) and stages it for
    /// credentials whose tickets will live in the memory cache `cache_name` only. Nothing is asked
    /// of a KDC yet.
    pub fn from_keytab(keytab_bytes: &[u8], principal: Option<&str>, cache_name: &str) -> Result<Self, KerberosError> {
        let summary = keytab::single_principal(keytab_bytes, principal)?;
        let dir = tempfile::Builder::new().prefix("ldapsync-krb5-").tempdir().map_err(KerberosError::StageKeytab)?;
        let path = dir.path().join("client.keytab");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(KerberosError::StageKeytab)?;
        file.write_all(keytab_bytes).and_then(|()| file.sync_all()).map_err(KerberosError::StageKeytab)?;
        drop(file);
        let fail = |detail: String| KerberosError::AcquireCredentials { principal: summary.principal.clone(), detail };
        let keytab_value = CString::new(format!("FILE:{}", path.display()))
            .map_err(|_| fail("keytab path contains a NUL byte".into()))?;
        let ccache_value =
            CString::new(format!("MEMORY:{cache_name}")).map_err(|_| fail("cache name contains a NUL byte".into()))?;
        Ok(Self {
            principal: summary.principal,
            keytab_value,
            ccache_value,
            cred: std::sync::Mutex::new(None),
            _keytab_dir: dir,
        })
    }

    /// The credentials in the form ldap3's `sasl_gssapi_cred_bind` takes, acquired from the keytab
    /// the first time (on a blocking thread: MIT asks the KDC then).
    pub async fn bind_credential(self: &std::sync::Arc<Self>) -> Result<cross_krb5::Cred, KerberosError> {
        let this = std::sync::Arc::clone(self);
        let fail = |detail: String| KerberosError::AcquireCredentials { principal: self.principal.clone(), detail };
        tokio::task::spawn_blocking(move || this.acquired())
            .await
            .map_err(|e| fail(e.to_string()))?
            .map(cross_krb5::Cred::from)
    }

    fn acquired(&self) -> Result<libgssapi::credential::Cred, KerberosError> {
        let fail = |detail: String| KerberosError::AcquireCredentials { principal: self.principal.clone(), detail };
        let mut slot = self.cred.lock().map_err(|_| fail("the credential lock is poisoned".into()))?;
        if let Some(cred) = slot.as_ref() {
            return Ok(cred.clone());
        }
        let name_bytes = self.principal.as_bytes();
        // SAFETY: every pointer handed to GSSAPI points into locals or fields that outlive the
        // calls; the imported name is released before returning and the credential handle is
        // owned by `Cred`.
        let cred = unsafe {
            let mut minor: sys::OM_uint32 = 0;
            let mut oid = sys::gss_OID_desc_struct {
                length: KRB5_PRINCIPAL_NAME_OID.len() as sys::OM_uint32,
                elements: KRB5_PRINCIPAL_NAME_OID.as_ptr() as *mut std::ffi::c_void,
            };
            let mut buffer = sys::gss_buffer_desc_struct {
                length: name_bytes.len(),
                value: name_bytes.as_ptr() as *mut std::ffi::c_void,
            };
            let mut name: sys::gss_name_t = ptr::null_mut();
            let major = sys::gss_import_name(&mut minor, &mut buffer, &mut oid, &mut name);
            if major != 0 {
                return Err(fail(gss_message(major, minor)));
            }
            let mut elements = [
                sys::gss_key_value_element_struct { key: c"client_keytab".as_ptr(), value: self.keytab_value.as_ptr() },
                sys::gss_key_value_element_struct { key: c"ccache".as_ptr(), value: self.ccache_value.as_ptr() },
            ];
            let store = sys::gss_key_value_set_struct {
                count: elements.len() as sys::OM_uint32,
                elements: elements.as_mut_ptr(),
            };
            let mut handle: sys::gss_cred_id_t = ptr::null_mut();
            let major = sys::gss_acquire_cred_from(
                &mut minor,
                name,
                sys::_GSS_C_INDEFINITE,
                ptr::null_mut(),
                sys::GSS_C_INITIATE as sys::gss_cred_usage_t,
                &store,
                &mut handle,
                ptr::null_mut(),
                ptr::null_mut(),
            );
            let mut release_minor: sys::OM_uint32 = 0;
            sys::gss_release_name(&mut release_minor, &mut name);
            if major != 0 {
                return Err(fail(gss_message(major, minor)));
            }
            libgssapi::credential::Cred::from(handle)
        };
        *slot = Some(cred.clone());
        Ok(cred)
    }

    /// The principal these credentials belong to.
    pub fn principal(&self) -> &str {
        &self.principal
    }
}

fn gss_message(major: u32, minor: u32) -> String {
    libgssapi::error::Error { major: libgssapi::error::MajorFlags::from_bits_retain(major), minor }.to_string()
}

/// Where the krb5.conf that ldapsync writes for itself lives, when the user gave none.
static GENERATED: std::sync::OnceLock<Option<GeneratedConfig>> = std::sync::OnceLock::new();

struct GeneratedConfig {
    path: std::path::PathBuf,
    kdcs: std::sync::Mutex<crate::domain::krb5conf::Kdcs>,
}

/// Deletes ldapsync's own krb5.conf when the process ends.
pub struct OwnConfig(std::path::PathBuf);

impl Drop for OwnConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Points `KRB5_CONFIG` at a krb5.conf that ldapsync keeps itself (in the temporary directory: no
/// writable root filesystem needed) unless the user set `KRB5_CONFIG`; the guard deletes it. Call
/// it in `main` before any other thread exists: it changes the process environment.
pub fn use_own_config_unless_given() -> Option<OwnConfig> {
    let generated = GENERATED.get_or_init(|| {
        if std::env::var_os("KRB5_CONFIG").is_some() {
            return None;
        }
        let path = std::env::temp_dir().join(format!("ldapsync-krb5-{}.conf", std::process::id()));
        let kdcs = crate::domain::krb5conf::Kdcs::new();
        if let Err(e) = std::fs::write(&path, crate::domain::krb5conf::render(&kdcs)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write ldapsync's krb5.conf; Kerberos uses the system's");
            return None;
        }
        // SAFETY: called from `main` before the runtime or any other thread starts, so nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var("KRB5_CONFIG", &path) };
        Some(GeneratedConfig { path, kdcs: std::sync::Mutex::new(kdcs) })
    });
    generated.as_ref().map(|g| OwnConfig(g.path.clone()))
}

/// Makes `kdc` (the DC a sync chose, `ip:88`) the first KDC of `principal`'s realm in ldapsync's
/// own krb5.conf; nothing when the user gave a krb5.conf. The file is replaced atomically: MIT
/// krb5 reads it again when it changes.
pub fn prefer_kdc(principal: &str, kdc: &str) {
    let Some(Some(config)) = GENERATED.get() else { return };
    let Some(realm) = crate::domain::krb5conf::realm_of(principal) else { return };
    let Ok(mut kdcs) = config.kdcs.lock() else { return };
    if !crate::domain::krb5conf::prefer(&mut kdcs, realm, kdc) {
        return;
    }
    let staged = config.path.with_extension("conf.new");
    let written = std::fs::write(&staged, crate::domain::krb5conf::render(&kdcs))
        .and_then(|()| std::fs::rename(&staged, &config.path));
    if let Err(e) = written {
        tracing::warn!(path = %config.path.display(), error = %e, "cannot update ldapsync's krb5.conf");
    }
}
