#!/usr/bin/env python3
"""LDIF for the OpenLDAP test directory: a generic one (inetOrgPerson, groupOfNames,
groupOfUniqueNames) under ou=people/ou=groups, and an AD-shaped one under ou=ad.

Usage: slapd_ldif.py BASE_DN [GENERIC_USERS] > seed.ldif   (loaded with slapadd)
"""
import sys
import uuid

base = sys.argv[1]
n_users = int(sys.argv[2]) if len(sys.argv) > 2 else 50
out = []

def entry(dn, *lines):
    # Replicas share entryUUIDs; slapadd would make up a different one per server.
    out.append("\n".join([f"dn: {dn}", *lines, f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_URL, dn.lower())}"]) + "\n")

def guid(name):
    return uuid.uuid5(uuid.NAMESPACE_DNS, name).bytes

entry(base, "objectClass: dcObject", "objectClass: organization", "o: Example", "dc: example")
for ou in ("people", "groups", "ad"):
    entry(f"ou={ou},{base}", "objectClass: organizationalUnit", f"ou: {ou}")

people = f"ou=people,{base}"
for i in range(n_users):
    uid = f"u{i:06d}"
    entry(f"uid={uid},{people}", "objectClass: inetOrgPerson", f"uid: {uid}", f"cn: User {i}",
          f"sn: {i}", f"displayName: User {i}", f"mail: {uid}@example.test")
groups = f"ou=groups,{base}"
entry(f"cn=staff,{groups}", "objectClass: groupOfNames", "objectClass: mailGroup", "cn: staff", "mail: staff@example.test",
      *[f"member: uid=u{i:06d},{people}" for i in range(min(n_users, 10))])
entry(f"cn=everyone,{groups}", "objectClass: groupOfNames", "cn: everyone",
      f"member: cn=staff,{groups}", *[f"member: uid=u{i:06d},{people}" for i in range(10, min(n_users, 20))])
entry(f"cn=admins,{groups}", "objectClass: groupOfUniqueNames", "cn: admins",
      *[f"uniqueMember: uid=u{i:06d},{people}" for i in range(min(n_users, 3))])

ad = f"ou=ad,{base}"
def ad_user(cn, sam, mail, proxies=(), uac=512):
    entry(f"cn={cn},{ad}", "objectClass: user", f"cn: {cn}", f"sn: {cn}", f"sAMAccountName: {sam}",
          f"userPrincipalName: {sam}@example.test", "objectCategory: person", f"userAccountControl: {uac}",
          f"mail: {mail}", *[f"proxyAddresses: {p}" for p in proxies],
          "objectGUID:: " + __import__("base64").b64encode(guid(sam)).decode())
ad_user("Ann Adams", "ann", "ann@example.test", ["SMTP:ann@example.test", "smtp:a.adams@example.test"])
ad_user("Ben Brown", "ben", "ben@example.test", ["SMTP:ben@example.test", "X500:/o=x/cn=ben"])
ad_user("Cid Disabled", "cid", "cid@example.test", uac=514)
entry(f"cn=Team,{ad}", "objectClass: group", "cn: Team", "sAMAccountName: Team", "mail: team@example.test",
      f"member: cn=Ann Adams,{ad}", f"member: cn=Ben Brown,{ad}")

print("\n".join(out))
