#!/usr/bin/env python3
"""LDIF for the Samba AD test directory: realistic users, contacts and (nested) groups.

Usage: samba_ldif.py BASE_DN SERVICE_PASSWORD > seed.ldif   (applied with ldapadd over StartTLS)
"""
import base64
import sys

base, service_password = sys.argv[1], sys.argv[2]
domain = ".".join(part.split("=", 1)[1] for part in base.split(","))
staff = f"OU=Staff,{base}"
bulk = f"OU=Bulk,{base}"
groups_ou = f"OU=Groups,{base}"
BULK_MEMBERS = 1510  # more than AD's 1,500-value range step
out = []

def entry(dn, *lines):
    out.append("\n".join([f"dn: {dn}", *lines]) + "\n")

def pwd(password):
    return "unicodePwd:: " + base64.b64encode(f'"{password}"'.encode("utf-16-le")).decode()

def user(cn, sam, given, sn, mails=(), proxies=(), disabled=False, password=None, ou=staff):
    lines = ["objectClass: user", f"sAMAccountName: {sam}", f"userPrincipalName: {sam}@{domain}",
             f"givenName: {given}", f"sn: {sn}", f"displayName: {given} {sn}"]
    lines += [f"mail: {m}" for m in mails]
    lines += [f"proxyAddresses: {p}" for p in proxies]
    if password:
        lines += [pwd(password), f"userAccountControl: {514 if disabled else 512}"]
    else:  # 32 = PASSWD_NOTREQD, 2 = ACCOUNTDISABLE
        lines += [f"userAccountControl: {546 if disabled else 544}"]
    entry(f"CN={cn},{ou}", *lines)

def contact(cn, mails=(), proxies=()):
    entry(f"CN={cn},{staff}", "objectClass: contact", f"displayName: {cn}",
          *[f"mail: {m}" for m in mails], *[f"proxyAddresses: {p}" for p in proxies])

def group(cn, group_type, members=(), mails=(), proxies=()):
    entry(f"CN={cn},{groups_ou}", "objectClass: group", f"sAMAccountName: {cn}",
          f"groupType: {group_type}", *[f"mail: {m}" for m in mails],
          *[f"proxyAddresses: {p}" for p in proxies], *[f"member: {m}" for m in members])

UNIVERSAL_DISTRIBUTION = 8
GLOBAL_SECURITY = -2147483646
UNIVERSAL_SECURITY = -2147483640

for ou in (staff, bulk, groups_ou):
    entry(ou, "objectClass: organizationalUnit")
# test-env.sh denies svc-sync2 any read below OU=Restricted: which of the two service accounts a
# session is bound as shows in whether it sees this user (Samba has no "Who am I?" operation).
entry(f"OU=Restricted,{base}", "objectClass: organizationalUnit")
user("Restricted User", "restricted", "Restricted", "User", ou=f"OU=Restricted,{base}")

d = domain
user("Alice Liddell", "alice", "Alice", "Liddell", mails=[f"alice@{d}"],
     proxies=[f"SMTP:alice@{d}", f"smtp:a.liddell@{d}", "smtp:alice@alias.example.test",
              "X500:/o=Corp/ou=Exchange Administrative Group/cn=Recipients/cn=alice",
              f"SIP:alice@{d}"],
     password="Alice#Pass-123")
user("Bob Builder", "bob", "Bob", "Builder", mails=[f"bob@{d}"],
     proxies=[f"SMTP:bob@{d}", f"smtp:robert@{d}"], password="Bob#Pass-123")
user("Carol Danvers", "carol", "Carol", "Danvers", mails=[f"carol@{d}"], password="Carol#Pass-123")
user("Dave Disabled", "dave", "Dave", "Disabled", mails=[f"dave@{d}"],
     proxies=[f"SMTP:dave@{d}"], disabled=True, password="Dave#Pass-123")
# frank's alias collides with the Helpdesk group's address: the deliberate duplicate.
user("Frank Helper", "frank", "Frank", "Helper", mails=[f"frank@{d}"],
     proxies=[f"SMTP:frank@{d}", f"smtp:helpdesk@{d}"], password="Frank#Pass-123")
user("Grace NoMail", "grace", "Grace", "NoMail", password="Grace#Pass-123")
user("svc-sync", "svc-sync", "Sync", "Service", password=service_password)
user("svc-sync2", "svc-sync2", "Sync", "Service Two", password=service_password)
# The lockout test's account: test-env.sh gives it a lockout threshold of 5 (a password settings
# object, so that no other account can be locked by the tests' deliberate bad binds).
user("svc-lockout", "svc-lockout", "Sync", "Lockout Test", password=service_password)
contact("Ext Partner", mails=["partner@external.example"], proxies=["SMTP:partner@external.example"])
contact("Vendor Contact", mails=["vendor@supplier.example"])
# A contact whose only address is a typed value outside proxyAddresses (like Exchange's targetAddress,
# which Samba's schema lacks: otherMailbox).
entry(f"CN=Mail Router,{staff}", "objectClass: contact", "displayName: Mail Router",
      "otherMailbox: SMTP:Router@Relay.Example")
# An internationalised domain, written in Unicode in the directory (LDIF: base64 for non-ASCII).
b64 = lambda text: base64.b64encode(text.encode()).decode()
entry(f"CN=Joerg Buecher,{staff}", "objectClass: user", "sAMAccountName: joerg", "givenName: Joerg",
      "sn: Buecher", "userAccountControl: 544", f"mail:: {b64('jörg@bücher.test')}")
# A mail-enabled object of another class (remoteMailRecipient): cached only when a connection
# lists the class in spec.mailObjectClasses. `top` allows proxyAddresses on every class.
entry(f"CN=Front Desk,{staff}", "objectClass: remoteMailRecipient", "displayName: Front Desk",
      f"proxyAddresses: SMTP:frontdesk@{domain}")
for i in range(BULK_MEMBERS):
    user(f"bulk{i:05d}", f"bulk{i:05d}", "Bulk", f"{i:05d}", mails=[f"bulk{i:05d}@{d}"], ou=bulk)

s = lambda cn: f"CN={cn},{staff}"
g = lambda cn: f"CN={cn},{groups_ou}"
group("Sales", UNIVERSAL_DISTRIBUTION, [s("Alice Liddell"), s("Bob Builder"), s("Ext Partner")],
      mails=[f"sales@{d}"], proxies=[f"SMTP:sales@{d}", f"smtp:sales-team@{d}"])
group("Engineering", GLOBAL_SECURITY, [s("Carol Danvers"), s("Frank Helper")])
group("Helpdesk", UNIVERSAL_SECURITY, [s("Frank Helper")], mails=[f"helpdesk@{d}"])
group("AllStaff", UNIVERSAL_SECURITY, [g("Sales"), g("Engineering"), s("Dave Disabled")],
      mails=[f"allstaff@{d}"])
group("BigGroup", UNIVERSAL_DISTRIBUTION,
      [f"CN=bulk{i:05d},{bulk}" for i in range(BULK_MEMBERS)], mails=[f"big@{d}"])
# Carol's primary group (test-env.sh sets it): AD then lists her in no `member` of Support.
group("Support", GLOBAL_SECURITY, [s("Carol Danvers")], mails=[f"support@{d}"])
# A membership cycle LoopA -> LoopB -> LoopA (AD allows it); the sync must not loop.
group("LoopA", GLOBAL_SECURITY, [s("Alice Liddell")])
group("LoopB", GLOBAL_SECURITY, [g("LoopA"), s("Grace NoMail")])
out.append(f"dn: {g('LoopA')}\nchangetype: modify\nadd: member\nmember: {g('LoopB')}\n-\n")

print("\n".join(out))
