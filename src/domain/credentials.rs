//! Why a directory refused the sync account's credentials. Active Directory says it in the bind
//! result's text (`... AcceptSecurityContext error, data 52e, ...`), a KDC in its error name. A
//! refusal is not retried with the same credentials: every retry is one more bad attempt towards
//! the domain's lockout threshold, counted for every system that uses the account.

use super::reason::Reason;

/// The reason for an LDAP bind refused with `code` and diagnostic text `detail`.
pub fn bind_refusal(code: u32, detail: &str) -> Reason {
    match code {
        8 | 13 => Reason::StrongerAuthRequired,
        49 => ad_data_code(detail).map_or(Reason::InvalidCredentials, |data| match data {
            "775" => Reason::AccountLockedOut,
            "533" => Reason::AccountDisabled,
            "532" => Reason::PasswordExpired,
            "701" => Reason::AccountExpired,
            "773" => Reason::PasswordMustChange,
            "530" | "531" => Reason::LogonNotPermitted,
            // 52e: wrong password; 525: no such user.
            _ => Reason::InvalidCredentials,
        }),
        _ => Reason::AuthenticationFailed,
    }
}

/// The reason for a Kerberos failure whose text is `detail`, when the KDC refused the account
/// itself (as opposed to a DC's service ticket or the network).
pub fn kerberos_refusal(detail: &str) -> Option<Reason> {
    let detail = detail.to_ascii_lowercase();
    if detail.contains("preauthentication failed") || detail.contains("client not found in kerberos database") {
        Some(Reason::InvalidCredentials)
    } else if detail.contains("credentials have been revoked") {
        // KDC_ERR_CLIENT_REVOKED: AD's answer for a locked-out, disabled or expired account.
        Some(Reason::CredentialsRevoked)
    } else if detail.contains("password has expired") {
        Some(Reason::PasswordExpired)
    } else {
        None
    }
}

/// Whether `reason` says the credentials themselves were refused: retrying them unchanged can
/// only add bad attempts.
pub fn is_refusal(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::InvalidCredentials
            | Reason::AccountLockedOut
            | Reason::AccountDisabled
            | Reason::PasswordExpired
            | Reason::AccountExpired
            | Reason::PasswordMustChange
            | Reason::LogonNotPermitted
            | Reason::CredentialsRevoked
    )
}

/// What a refused pod waits for, as its row says it.
pub const WAITING_FOR_CHANGE: &str = "not retried with the same credentials (each bad attempt counts towards the domain's lockout threshold): \
     waiting for a change of the credentials Secret or of the spec, or a sync request";

/// The three hex digits after `data ` in an AD diagnostic message.
fn ad_data_code(detail: &str) -> Option<&str> {
    let at = detail.find("data ")? + "data ".len();
    let code = detail.get(at..)?.split(|c: char| !c.is_ascii_hexdigit()).next()?;
    (!code.is_empty()).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_sub_codes_each_name_their_cause() {
        let text = |data: &str| {
            format!("80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data {data}, v4563")
        };
        for (data, reason) in [
            ("52e", Reason::InvalidCredentials),
            ("525", Reason::InvalidCredentials),
            ("775", Reason::AccountLockedOut),
            ("533", Reason::AccountDisabled),
            ("532", Reason::PasswordExpired),
            ("701", Reason::AccountExpired),
            ("773", Reason::PasswordMustChange),
            ("530", Reason::LogonNotPermitted),
            ("531", Reason::LogonNotPermitted),
        ] {
            assert_eq!(bind_refusal(49, &text(data)), reason, "data {data}");
            assert!(is_refusal(reason));
        }
        // OpenLDAP says nothing more than invalidCredentials.
        assert_eq!(bind_refusal(49, ""), Reason::InvalidCredentials);
        assert_eq!(bind_refusal(8, "strong(er) authentication required"), Reason::StrongerAuthRequired);
        assert_eq!(bind_refusal(48, "inappropriate authentication"), Reason::AuthenticationFailed);
        assert!(!is_refusal(Reason::StrongerAuthRequired) && !is_refusal(Reason::AuthenticationFailed));
    }

    #[test]
    fn kdc_refusals_of_the_account_are_told_from_other_kerberos_failures() {
        assert_eq!(kerberos_refusal("Preauthentication failed (-1765328360)"), Some(Reason::InvalidCredentials));
        assert_eq!(kerberos_refusal("Clients credentials have been revoked"), Some(Reason::CredentialsRevoked));
        assert_eq!(kerberos_refusal("Password has expired"), Some(Reason::PasswordExpired));
        assert_eq!(kerberos_refusal("Client not found in Kerberos database"), Some(Reason::InvalidCredentials));
        // A DC without its service principal is that DC's problem: the next DC may have it.
        assert_eq!(kerberos_refusal("Server not found in Kerberos database"), None);
        assert_eq!(kerberos_refusal("Cannot contact any KDC for realm 'CORP.EXAMPLE.TEST'"), None);
    }
}
