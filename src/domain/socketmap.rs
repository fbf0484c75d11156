//! Postfix's socketmap protocol (socketmap_table(5)), as pure functions: a request is the netstring
//! `<length>:<map> <key>,`; a reply is the netstring `OK <data>`, `NOTFOUND `, `TEMP <reason>`,
//! `TIMEOUT <reason>` or `PERM <reason>`. Which answer a map gives lives here too, so that the
//! server only moves bytes.

use std::borrow::Cow;

use super::address::lookup_key;
use super::index::Index;

/// Postfix's own limit on a socketmap netstring (request or reply).
pub const MAX_NETSTRING: usize = 100_000;

/// One request: the map's name (the part after the last `:` of `socketmap:inet:HOST:PORT:NAME`)
/// and the key being looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub map: &'a str,
    pub key: &'a str,
}

/// A request that cannot be framed: the stream cannot be resynchronised, so the connection closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("the netstring length is not a decimal number")]
    MalformedLength,
    #[error("a netstring of {0} bytes exceeds the limit of {MAX_NETSTRING}")]
    TooLong(usize),
    #[error("the netstring does not end with ','")]
    MissingComma,
}

/// A well-framed request whose content is refused: answered `PERM`, the connection goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request is not UTF-8")]
    NotUtf8,
    #[error("the request has no key (expected `map key`)")]
    NoKey,
    #[error("the map name is empty")]
    EmptyMap,
    #[error("the key contains a NUL byte")]
    NulInKey,
    #[error("the key contains white space")]
    SpaceInKey,
    #[error("unknown map {0:?} (known: recipient, domain, member=GROUP)")]
    UnknownMap(String),
}

/// A complete netstring at the start of `buf`: its payload and the bytes it took. `Ok(None)` when
/// more bytes are needed.
pub fn take_netstring(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FramingError> {
    // "100000:" is the longest prefix allowed; more digits than that is already too long.
    let digits = buf.iter().take(7).take_while(|b| b.is_ascii_digit()).count();
    let Some(&after) = buf.get(digits) else {
        return if digits == 7 { Err(FramingError::TooLong(usize::MAX)) } else { Ok(None) };
    };
    if digits == 0 || after != b':' || (digits > 1 && buf[0] == b'0') {
        return Err(if digits == 7 { FramingError::TooLong(usize::MAX) } else { FramingError::MalformedLength });
    }
    let mut length = 0usize;
    for d in &buf[..digits] {
        length = length * 10 + usize::from(d - b'0');
    }
    if length > MAX_NETSTRING {
        return Err(FramingError::TooLong(length));
    }
    let start = digits + 1;
    let end = start + length;
    match buf.get(end) {
        None => Ok(None),
        Some(b',') => Ok(Some((&buf[start..end], end + 1))),
        Some(_) => Err(FramingError::MissingComma),
    }
}

/// The map name and key of a request payload.
pub fn parse_request(payload: &[u8]) -> Result<Request<'_>, RequestError> {
    let text = std::str::from_utf8(payload).map_err(|_| RequestError::NotUtf8)?;
    let (map, key) = text.split_once(' ').ok_or(RequestError::NoKey)?;
    if map.is_empty() {
        return Err(RequestError::EmptyMap);
    }
    if key.is_empty() {
        return Err(RequestError::NoKey);
    }
    if key.contains('\0') {
        return Err(RequestError::NulInKey);
    }
    if key.chars().any(char::is_whitespace) {
        return Err(RequestError::SpaceInKey);
    }
    Ok(Request { map, key })
}

/// The maps the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map<'a> {
    /// `recipient`: `OK <primary address>` for a cached user, contact or group.
    Recipient,
    /// `domain`: `OK <domain>` when the cache holds an address in the domain (relay_domains).
    Domain,
    /// `member=GROUP`: `OK OK` when the key's object is a member of GROUP (its address, name or
    /// DN), directly or through nested groups. The data is an access(5) action, so that the map
    /// works in `check_sender_access` / `check_recipient_access` as it is.
    Member(&'a str),
}

impl<'a> Map<'a> {
    pub fn parse(name: &'a str) -> Result<Self, RequestError> {
        match name {
            "recipient" => Ok(Map::Recipient),
            "domain" => Ok(Map::Domain),
            _ => match name.strip_prefix("member=") {
                Some(group) if !group.is_empty() => Ok(Map::Member(group)),
                _ => Err(RequestError::UnknownMap(name.to_owned())),
            },
        }
    }

    /// Its position in [`MAP_LABELS`] (a bounded metrics label, never the group's name).
    pub fn metric_index(&self) -> usize {
        match self {
            Map::Recipient => 0,
            Map::Domain => 1,
            Map::Member(_) => 2,
        }
    }
}

/// Metrics labels of the maps, by [`Map::metric_index`]; the last is for refused requests.
pub const MAP_LABELS: [&str; 4] = ["recipient", "domain", "member", "invalid"];
/// The index of [`MAP_LABELS`] that counts refused requests.
pub const INVALID_REQUEST: usize = 3;
/// Metrics labels of the replies, by [`Reply::metric_index`].
pub const REPLY_LABELS: [&str; 5] = ["ok", "notfound", "temp", "timeout", "perm"];

/// A socketmap reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    Ok(Cow<'a, str>),
    NotFound,
    Temp(Cow<'a, str>),
    Timeout(Cow<'a, str>),
    Perm(Cow<'a, str>),
}

impl Reply<'_> {
    /// Its position in [`REPLY_LABELS`].
    pub fn metric_index(&self) -> usize {
        match self {
            Reply::Ok(_) => 0,
            Reply::NotFound => 1,
            Reply::Temp(_) => 2,
            Reply::Timeout(_) => 3,
            Reply::Perm(_) => 4,
        }
    }

    /// Appends the reply as a netstring (data cut to Postfix's limit, never mid-character).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let (status, data): (&str, &str) = match self {
            Reply::Ok(d) => ("OK ", d),
            Reply::NotFound => ("NOTFOUND ", ""),
            Reply::Temp(d) => ("TEMP ", d),
            Reply::Timeout(d) => ("TIMEOUT ", d),
            Reply::Perm(d) => ("PERM ", d),
        };
        let mut room = MAX_NETSTRING - status.len();
        if data.len() > room {
            while !data.is_char_boundary(room) {
                room -= 1;
            }
        }
        let data = &data[..data.len().min(room)];
        out.extend_from_slice((status.len() + data.len()).to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(status.as_bytes());
        out.extend_from_slice(data.as_bytes());
        out.push(b',');
    }
}

/// How keys are read, as Postfix's own tables do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRules {
    /// Characters that start an address extension (`recipient_delimiter`), e.g. `+`: a key
    /// `user+tag@domain` not found as such is looked up as `user@domain`.
    pub recipient_delimiters: String,
}

/// The forms of a key to try, in order: as sent, then without an address extension. (The index
/// matches either IDNA form of the domain, and any case.)
pub fn key_forms(key: &str, rules: &KeyRules) -> Vec<String> {
    let key = lookup_key(key).into_owned();
    let base = key.rsplit_once('@').and_then(|(local, domain)| {
        let cut = local.find(|c| rules.recipient_delimiters.contains(c)).filter(|&i| i > 0)?;
        Some(format!("{}@{domain}", &local[..cut]))
    });
    std::iter::once(key).chain(base).collect()
}

/// The answer of `map` for `key` from the cache. `None` for `index` means no cache is loaded yet:
/// `TEMP`, so that Postfix defers the mail instead of rejecting or accepting it.
pub fn answer<'i>(index: Option<&'i Index>, map: Map<'_>, key: &str, rules: &KeyRules) -> Reply<'i> {
    let Some(index) = index else {
        return Reply::Temp("ldapsync has no cache loaded yet".into());
    };
    let forms = key_forms(key, rules);
    match map {
        Map::Recipient => {
            forms.iter().find_map(|k| index.primary_address_of(k)).map_or(Reply::NotFound, |p| Reply::Ok(p.into()))
        }
        Map::Domain => {
            forms.iter().find(|d| index.has_domain(d)).map_or(Reply::NotFound, |d| Reply::Ok(Cow::Owned(d.clone())))
        }
        Map::Member(group) => {
            let group = group.to_lowercase();
            let member = forms.iter().find_map(|k| index.lookup_address(k)).is_some_and(|a| {
                a.groups.iter().any(|g| {
                    g.address.is_some_and(|x| x.eq_ignore_ascii_case(&group))
                        || g.name.is_some_and(|x| x.to_lowercase() == group)
                        || g.dn.eq_ignore_ascii_case(&group)
                })
            });
            if member { Reply::Ok("OK".into()) } else { Reply::NotFound }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstrings_are_framed_incrementally() {
        assert_eq!(take_netstring(b""), Ok(None));
        assert_eq!(take_netstring(b"12"), Ok(None));
        assert_eq!(take_netstring(b"5:hel"), Ok(None));
        assert_eq!(take_netstring(b"5:hello"), Ok(None));
        assert_eq!(take_netstring(b"5:hello,rest"), Ok(Some((&b"hello"[..], 8))));
        assert_eq!(take_netstring(b"0:,"), Ok(Some((&b""[..], 3))));
        assert_eq!(take_netstring(b"100000:"), Ok(None));
    }

    #[test]
    fn malformed_netstrings_close_the_connection() {
        for (input, err) in [
            (&b":x,"[..], FramingError::MalformedLength),
            (b"x5:hello,", FramingError::MalformedLength),
            (b"5 :hello,", FramingError::MalformedLength),
            (b"05:hello,", FramingError::MalformedLength),
            (b"-1:x,", FramingError::MalformedLength),
            (b"5:hello;", FramingError::MissingComma),
            (b"100001:", FramingError::TooLong(100_001)),
            (b"9999999", FramingError::TooLong(usize::MAX)),
        ] {
            assert_eq!(take_netstring(input), Err(err), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn requests_name_a_map_and_a_key() {
        assert_eq!(parse_request(b"recipient a@b.test"), Ok(Request { map: "recipient", key: "a@b.test" }));
        assert_eq!(parse_request(b"recipient"), Err(RequestError::NoKey));
        assert_eq!(parse_request(b"recipient "), Err(RequestError::NoKey));
        assert_eq!(parse_request(b" a@b.test"), Err(RequestError::EmptyMap));
        assert_eq!(parse_request(b"recipient a\0b"), Err(RequestError::NulInKey));
        assert_eq!(parse_request(b"recipient a b"), Err(RequestError::SpaceInKey));
        assert_eq!(parse_request(b"recipient a\tb"), Err(RequestError::SpaceInKey));
        assert_eq!(parse_request(b"recipient \xff"), Err(RequestError::NotUtf8));
        assert_eq!(Map::parse("member=sales@corp.test"), Ok(Map::Member("sales@corp.test")));
        assert_eq!(Map::parse("member="), Err(RequestError::UnknownMap("member=".into())));
        assert_eq!(Map::parse("virtual"), Err(RequestError::UnknownMap("virtual".into())));
    }

    #[test]
    fn replies_are_netstrings_within_the_limit() {
        let encode = |r: Reply<'_>| {
            let mut out = Vec::new();
            r.encode_into(&mut out);
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(encode(Reply::Ok("a@b.test".into())), "11:OK a@b.test,");
        assert_eq!(encode(Reply::NotFound), "9:NOTFOUND ,");
        assert_eq!(encode(Reply::Temp("no cache".into())), "13:TEMP no cache,");
        assert_eq!(encode(Reply::Perm("bad".into())), "8:PERM bad,");
        let long = encode(Reply::Perm("é".repeat(60_000).into()));
        let (len, rest) = long.split_once(':').expect("netstring");
        assert!(len.parse::<usize>().expect("length") <= MAX_NETSTRING);
        assert_eq!(rest.len() - 1, len.parse::<usize>().expect("length"));
    }

    #[test]
    fn keys_are_tried_in_lookup_form_then_without_extension() {
        let plus = KeyRules { recipient_delimiters: "+-".into() };
        assert_eq!(key_forms("Alice@Corp.Test", &KeyRules::default()), vec!["alice@corp.test"]);
        assert_eq!(key_forms("alice+news@corp.test", &plus), vec!["alice+news@corp.test", "alice@corp.test"]);
        assert_eq!(key_forms("alice+news@corp.test", &KeyRules::default()), vec!["alice+news@corp.test"]);
        assert_eq!(key_forms("+x@corp.test", &plus), vec!["+x@corp.test"], "no empty local part");
        assert_eq!(key_forms("jörg@bücher.test", &KeyRules::default()), vec!["jörg@xn--bcher-kva.test"]);
        assert_eq!(key_forms("bücher.test", &KeyRules::default()), vec!["xn--bcher-kva.test"]);
        assert_eq!(key_forms("a-b+c@bücher.test", &plus), vec!["a-b+c@xn--bcher-kva.test", "a@xn--bcher-kva.test"]);
    }

    #[test]
    fn maps_answer_from_the_index() {
        let index = crate::domain::index::tests::sample();
        let plus = KeyRules { recipient_delimiters: "+".into() };
        let ask = |map: &str, key: &str| {
            let mut out = Vec::new();
            answer(Some(&index), Map::parse(map).expect("map"), key, &plus).encode_into(&mut out);
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(ask("recipient", "AL@corp.example.com"), "25:OK alice@corp.example.com,");
        assert_eq!(ask("recipient", "al+news@corp.example.com"), "25:OK alice@corp.example.com,");
        assert_eq!(ask("recipient", "bob@corp.example.com"), "23:OK bob@corp.example.com,");
        assert_eq!(ask("recipient", "nobody@corp.example.com"), "9:NOTFOUND ,");
        assert_eq!(ask("domain", "CORP.example.com"), "19:OK corp.example.com,");
        assert_eq!(ask("domain", "example.com"), "9:NOTFOUND ,");
        // Nested: Alice is in Sales, Sales in All; Bob only in All.
        assert_eq!(ask("member=sales@corp.example.com", "al@corp.example.com"), "5:OK OK,");
        assert_eq!(ask("member=sales@corp.example.com", "bob@corp.example.com"), "9:NOTFOUND ,");
        assert_eq!(ask("member=all@corp.example.com", "al+x@corp.example.com"), "5:OK OK,");
        assert_eq!(ask("member=all@corp.example.com", "bob@corp.example.com"), "5:OK OK,");
        assert_eq!(ask("member=Sales", "al@corp.example.com"), "5:OK OK,");
        assert_eq!(ask("member=sales@corp.example.com", "nobody@corp.example.com"), "9:NOTFOUND ,");
    }

    #[test]
    fn without_a_cache_every_map_answers_temp() {
        for map in [Map::Recipient, Map::Domain, Map::Member("g")] {
            let reply = answer(None, map, "a@b.test", &KeyRules::default());
            assert_eq!(REPLY_LABELS[reply.metric_index()], "temp");
        }
    }
}
