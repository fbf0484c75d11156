#!/usr/bin/env python3
"""LDIF for volume tests: N inetOrgPerson users and G groupOfNames of N/G members each (one in ten
groups nested in the next), with fixed entryUUIDs.

Usage: volume_ldif.py BASE_DN USERS GROUPS > volume.ldif   (loaded with slapadd)
"""
import sys
import uuid

base, n_users, n_groups = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
w = sys.stdout.write

def uid(dn):
    return f"entryUUID: {uuid.uuid5(uuid.NAMESPACE_URL, dn.lower())}\n"

w(f"dn: {base}\nobjectClass: dcObject\nobjectClass: organization\no: Volume\ndc: {base.split(',')[0].split('=')[1]}\n{uid(base)}\n")
for ou in ("people", "groups"):
    dn = f"ou={ou},{base}"
    w(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {ou}\n{uid(dn)}\n")
for i in range(n_users):
    dn = f"uid=u{i:07d},ou=people,{base}"
    w(f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: u{i:07d}\ncn: User {i}\nsn: {i}\n"
      f"displayName: User Number {i}\nmail: u{i:07d}@volume.example\n{uid(dn)}\n")
per_group = max(1, n_users // max(1, n_groups))
for g in range(n_groups):
    dn = f"cn=g{g:05d},ou=groups,{base}"
    members = [f"member: uid=u{i:07d},ou=people,{base}" for i in range(g * per_group, min(n_users, (g + 1) * per_group))]
    if g % 10 == 0 and g + 1 < n_groups:
        members.append(f"member: cn=g{g + 1:05d},ou=groups,{base}")
    w(f"dn: {dn}\nobjectClass: groupOfNames\nobjectClass: mailGroup\ncn: g{g:05d}\nmail: g{g:05d}@volume.example\n"
      + "\n".join(members) + f"\n{uid(dn)}\n")
