//! What to read from a directory: per object kind a filter and attributes, from the connection spec.

use crate::api::{DirectoryType, DisabledAccounts, LdapConnectionSpec};

use super::snapshot::{AttributeNames, ObjectKind};

/// One search of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectQuery {
    pub kind: ObjectKind,
    pub filter: String,
    pub attributes: Vec<String>,
}

/// Everything a sync reads, and how to interpret it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPlan {
    pub queries: Vec<ObjectQuery>,
    pub names: AttributeNames,
}

/// A malformed extra filter, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.filters.{field} is not a valid LDAP filter: {detail}")]
pub struct FilterError {
    pub field: &'static str,
    pub detail: String,
}

const AD_USERS: &str = "(&(objectCategory=person)(objectClass=user))";
/// AD users whose userAccountControl lacks ACCOUNTDISABLE (bit 2), by the bitwise-AND matching rule.
const AD_ENABLED_USERS: &str =
    "(&(objectCategory=person)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))";
const AD_CONTACTS: &str = "(objectClass=contact)";
const AD_GROUPS: &str = "(objectClass=group)";
const GENERIC_USERS: &str = "(objectClass=inetOrgPerson)";
const GENERIC_GROUPS: &str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))";

/// The read plan of a connection, with its extra filters checked and combined by `&`.
pub fn read_plan(spec: &LdapConnectionSpec) -> Result<ReadPlan, FilterError> {
    let extra = spec.filters.clone().unwrap_or_default();
    let names = match spec.directory_type {
        DirectoryType::ActiveDirectory => AttributeNames::active_directory(spec.email_attributes.clone()),
        DirectoryType::Generic => {
            let m = spec.attribute_mapping.clone();
            AttributeNames {
                id: m.as_ref().map_or("entryUUID".into(), |m| m.unique_id.clone()),
                account_name: m.as_ref().map_or("uid".into(), |m| m.user_name.clone()),
                principal_name: None,
                display_name: m.as_ref().map_or("cn".into(), |m| m.display_name.clone()),
                account_control: None,
                members: vec!["member".into(), "uniqueMember".into()],
                primary_group: None,
                email: spec.email_attributes.clone(),
            }
        }
    };
    let mut object_attrs: Vec<String> = vec![names.id.clone(), names.account_name.clone(), names.display_name.clone()];
    object_attrs.extend(names.principal_name.clone());
    object_attrs.extend(names.account_control.clone());
    object_attrs.extend(names.email.iter().cloned());
    let mut group_attrs = object_attrs.clone();
    group_attrs.extend(names.members.iter().cloned());
    let mut user_attrs = object_attrs.clone();
    if let Some(primary) = &names.primary_group {
        user_attrs.extend([primary.sid.clone(), primary.group_id.clone()]);
        group_attrs.push(primary.sid.clone());
    }

    let (users, contacts, groups) = match spec.directory_type {
        DirectoryType::ActiveDirectory => {
            let users = match spec.disabled_accounts {
                DisabledAccounts::Include => AD_USERS,
                DisabledAccounts::Exclude => AD_ENABLED_USERS,
            };
            (users, spec.contacts.enabled.then_some(AD_CONTACTS), AD_GROUPS)
        }
        DirectoryType::Generic => (GENERIC_USERS, None, GENERIC_GROUPS),
    };
    let mut queries = vec![ObjectQuery {
        kind: ObjectKind::User,
        filter: combine("users", users, extra.users.as_deref())?,
        attributes: user_attrs,
    }];
    if let Some(contacts) = contacts {
        queries.push(ObjectQuery {
            kind: ObjectKind::Contact,
            filter: combine("contacts", contacts, extra.contacts.as_deref())?,
            attributes: object_attrs.clone(),
        });
    }
    queries.push(ObjectQuery {
        kind: ObjectKind::Group,
        filter: combine("groups", groups, extra.groups.as_deref())?,
        attributes: group_attrs,
    });
    if !spec.mail_object_classes.is_empty() {
        // Validated as object class names: nothing to escape.
        let classes: String = spec.mail_object_classes.iter().map(|c| format!("(objectClass={c})")).collect();
        queries.push(ObjectQuery {
            kind: ObjectKind::Recipient,
            filter: format!("(|{classes})"),
            attributes: object_attrs,
        });
    }
    Ok(ReadPlan { queries, names })
}

/// `(&BASE EXTRA)` after checking EXTRA parses as an RFC 4515 filter.
fn combine(field: &'static str, base: &str, extra: Option<&str>) -> Result<String, FilterError> {
    let Some(extra) = extra.map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok(base.to_owned());
    };
    let wrapped = if extra.starts_with('(') { extra.to_owned() } else { format!("({extra})") };
    validate_filter(&wrapped).map_err(|detail| FilterError { field, detail })?;
    Ok(format!("(&{base}{wrapped})"))
}

/// A value for an RFC 4515 filter: `*`, `(`, `)`, `\`, NUL and every byte outside printable
/// ASCII as `\xx`, so that no value read or configured can change a filter's meaning.
pub fn escape_filter_value(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if b.is_ascii_graphic() && !matches!(b, b'*' | b'(' | b')' | b'\\') || b == b' ' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:02x}"));
        }
    }
    out
}

/// `(|(attr=v1)(attr=v2)...)` over every attribute and value, escaped.
pub fn any_of<'a>(attrs: &[&str], values: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut out = String::from("(|");
    for value in values {
        let value = escape_filter_value(value);
        for attr in attrs {
            out.push_str(&format!("({attr}={value})"));
        }
    }
    out.push(')');
    out
}

/// Checks an RFC 4515 filter without sending it anywhere.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    let mut depth = 0i64;
    let mut escaped = false;
    for c in filter.chars() {
        match c {
            '\\' => escaped = !escaped,
            '(' if !escaped => depth += 1,
            ')' if !escaped => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            _ => escaped = false,
        }
        if c != '\\' {
            escaped = false;
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    ldap3::parse_filter(filter).map(|_| ()).map_err(|_| "the filter does not parse (RFC 4515)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectFilters;

    fn spec(yaml: &str) -> LdapConnectionSpec {
        serde_yaml::from_str(yaml).expect("spec")
    }

    const AD: &str =
        "domain: corp.example.com\nsearchBase: DC=corp\nauth: {simple: {bindDN: x, passwordSecretRef: {name: p}}}\n";

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(escape_filter_value(b"CN=a*b (x)\\y,DC=t"), r"CN=a\2ab \28x\29\5cy,DC=t");
        assert_eq!(escape_filter_value(&[0x00, 0xff, b'a']), "\\00\\ffa");
        let filter = any_of(&["member", "uniqueMember"], [&b"CN=a)(x=*"[..], b"CN=b"]);
        assert_eq!(
            filter,
            "(|(member=CN=a\\29\\28x=\\2a)(uniqueMember=CN=a\\29\\28x=\\2a)(member=CN=b)(uniqueMember=CN=b))"
        );
        assert!(validate_filter(&filter).is_ok());
    }

    #[test]
    fn excluding_disabled_accounts_is_asked_of_the_dc() {
        let mut spec: LdapConnectionSpec = serde_json::from_value(serde_json::json!({
            "domain": "corp.test", "searchBase": "DC=corp,DC=test", "auth": {}
        }))
        .expect("spec");
        let users = |spec: &LdapConnectionSpec| read_plan(spec).expect("plan").queries[0].filter.clone();
        assert_eq!(users(&spec), AD_USERS);
        spec.disabled_accounts = DisabledAccounts::Exclude;
        assert!(users(&spec).ends_with("(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"), "{}", users(&spec));
        assert!(validate_filter(&users(&spec)).is_ok());
    }

    #[test]
    fn active_directory_queries() {
        let plan = read_plan(&spec(AD)).expect("plan");
        let kinds: Vec<_> = plan.queries.iter().map(|q| (q.kind, q.filter.as_str())).collect();
        assert_eq!(kinds, [(ObjectKind::User, AD_USERS), (ObjectKind::Group, AD_GROUPS)]);
        assert!(plan.queries[1].attributes.contains(&"member".to_owned()));
        assert!(plan.queries[0].attributes.contains(&"proxyAddresses".to_owned()));
        let with_contacts = read_plan(&spec(&format!("{AD}contacts: {{enabled: true}}\n"))).expect("plan");
        assert_eq!(with_contacts.queries[1].filter, AD_CONTACTS);
    }

    #[test]
    fn generic_queries_use_the_mapping() {
        let plan = read_plan(&spec(&format!("{AD}directoryType: Generic\nattributeMapping: {{userName: mailNickname, displayName: displayName, uniqueId: nsUniqueId}}\n"))).expect("plan");
        assert_eq!(plan.queries.len(), 2);
        assert_eq!(plan.queries[1].filter, GENERIC_GROUPS);
        assert_eq!(plan.names.account_name, "mailNickname");
        assert!(plan.queries[1].attributes.contains(&"uniqueMember".to_owned()));
    }

    #[test]
    fn extra_filters_combine_or_are_refused_naming_the_field() {
        let mut s = spec(AD);
        s.filters = Some(ObjectFilters {
            users: Some("department=Sales".into()),
            groups: Some("(mail=*)".into()),
            contacts: None,
        });
        let plan = read_plan(&s).expect("plan");
        assert_eq!(plan.queries[0].filter, format!("(&{AD_USERS}(department=Sales))"));
        assert_eq!(plan.queries[1].filter, format!("(&{AD_GROUPS}(mail=*))"));
        for (bad, why) in [
            ("(department=Sales", "unbalanced"),
            ("(&(a=b)))", "unbalanced"),
            ("(=x)", "does not parse"),
            ("(cn=a\\zz)", "does not parse"),
        ] {
            s.filters = Some(ObjectFilters { users: None, groups: Some(bad.into()), contacts: None });
            let err = read_plan(&s).expect_err(bad);
            assert_eq!(err.field, "groups");
            assert!(err.detail.contains(why), "{bad}: {err}");
            assert!(err.to_string().starts_with("spec.filters.groups"), "{err}");
        }
    }

    #[test]
    fn more_mail_enabled_classes_are_read_as_recipients() {
        let with = spec(&format!("{AD}mailObjectClasses: [publicFolder, msExchDynamicDistributionList]\n"));
        let plan = read_plan(&with).expect("plan");
        let last = plan.queries.last().expect("a query");
        assert_eq!(last.kind, ObjectKind::Recipient);
        assert_eq!(last.filter, "(|(objectClass=publicFolder)(objectClass=msExchDynamicDistributionList))");
        assert!(
            last.attributes.contains(&"proxyAddresses".to_owned()) && !last.attributes.contains(&"member".to_owned())
        );
        let without = read_plan(&spec(AD)).expect("plan");
        assert!(without.queries.iter().all(|q| q.kind != ObjectKind::Recipient), "the defaults are unchanged");
    }
}
