#!/usr/bin/env python3
"""Applies deploy/acls.toml to a Kafka cluster: each bluelight service's principal gets exactly
the ACLs listed for it, and, when asked, its SCRAM-SHA-512 credentials.

Needs Python 3.11+ and the Confluent client (`pip install confluent-kafka`; deploy/local/test puts
it in .local/venv). Connects with an administrator's credentials (a super user, or one allowed to
Alter the cluster and create ACLs), given as librdkafka properties.

Examples:
  # What would be granted, with the default principals (User:bluelight-<service>) and groups:
  deploy/acls.py --dry-run

  # Grant it, connecting as the cluster administrator:
  deploy/acls.py --bootstrap kafka-0:9093 \\
      --admin-property security.protocol=SASL_SSL --admin-property sasl.mechanism=SCRAM-SHA-512 \\
      --admin-property sasl.username=admin --admin-property sasl.password-file=/run/secrets/admin \\
      --admin-property ssl.ca.location=/run/secrets/ca.pem

  # Also set the services' SCRAM passwords (one file per service, the password alone):
  deploy/acls.py --bootstrap kafka-0:9093 ... --scram-password-file ingest=secrets/ingest.password

Run it again after changing acls.toml: what is listed is created (creating an ACL that exists is
a no-op); ACLs no longer listed are not removed (it says which it finds, with --prune to delete
them), so a change never opens a gap in a running service's rights.
"""

import argparse
import sys
import tomllib
from pathlib import Path

ACLS = Path(__file__).with_name("acls.toml")

# acls.toml key -> (resource type, pattern type, operations, permission)
KINDS = {
    "read": ("TOPIC", "LITERAL", ["READ", "DESCRIBE"], "ALLOW"),
    "write": ("TOPIC", "LITERAL", ["WRITE", "DESCRIBE"], "ALLOW"),
    "read_prefixed": ("TOPIC", "PREFIXED", ["READ", "DESCRIBE"], "ALLOW"),
    "write_prefixed": ("TOPIC", "PREFIXED", ["WRITE", "DESCRIBE"], "ALLOW"),
    "create_prefixed": ("TOPIC", "PREFIXED", ["CREATE", "DESCRIBE"], "ALLOW"),
    "deny_write": ("TOPIC", "LITERAL", ["WRITE"], "DENY"),
    "groups": ("GROUP", "LITERAL", ["READ", "DESCRIBE"], "ALLOW"),
    "groups_prefixed": ("GROUP", "PREFIXED", ["READ", "DESCRIBE"], "ALLOW"),
    "transactional_ids_prefixed": ("TRANSACTIONAL_ID", "PREFIXED", ["WRITE", "DESCRIBE"], "ALLOW"),
}


def pairs(values, what):
    out = {}
    for v in values or []:
        key, sep, value = v.partition("=")
        if not sep or not key or not value:
            sys.exit(f"acls.py: {what} '{v}' is not SERVICE=VALUE")
        out[key] = value
    return out


def bindings(table, principals, groups):
    """(principal, resource type, name, pattern, operation, permission) for every grant."""
    out = []
    for service, grants in table.items():
        unknown = set(grants) - set(KINDS)
        if unknown:
            sys.exit(f"acls.py: [{service}] in {ACLS.name}: unknown keys {sorted(unknown)}; known: {sorted(KINDS)}")
        principal = "User:" + principals.get(service, f"bluelight-{service}")
        group = groups.get(service, f"bluelight-{service}")
        for kind, names in grants.items():
            resource, pattern, operations, permission = KINDS[kind]
            for name in names:
                name = name.replace("{group}", group)
                for op in operations:
                    b = (principal, resource, name, pattern, op, permission)
                    if b not in out:
                        out.append(b)
    return out


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--bootstrap", help="the cluster's bootstrap servers (HOST:PORT,...)")
    ap.add_argument("--admin-property", action="append", metavar="KEY=VALUE",
                    help="a librdkafka property for the administrator's connection; "
                         "KEY-file=PATH reads the value from a file (e.g. sasl.password-file)")
    ap.add_argument("--principal", action="append", metavar="SERVICE=USER",
                    help="the service's SCRAM user name (default bluelight-SERVICE)")
    ap.add_argument("--group", action="append", metavar="SERVICE=GROUP",
                    help="the service's --group (default bluelight-SERVICE)")
    ap.add_argument("--scram-password-file", action="append", metavar="SERVICE=FILE",
                    help="set the service's SCRAM-SHA-512 password to FILE's content")
    ap.add_argument("--only", action="append", metavar="SERVICE", help="only these services")
    ap.add_argument("--prune", action="store_true",
                    help="also delete the ACLs of these principals that acls.toml no longer lists")
    ap.add_argument("--dry-run", action="store_true", help="print the ACLs and change nothing")
    args = ap.parse_args()

    table = tomllib.loads(ACLS.read_text())
    for s in args.only or []:
        if s not in table:
            sys.exit(f"acls.py: no service '{s}' in {ACLS.name}; it has {sorted(table)}")
    if args.only:
        table = {s: g for s, g in table.items() if s in args.only}
    principals = pairs(args.principal, "--principal")
    groups = pairs(args.group, "--group")
    passwords = pairs(args.scram_password_file, "--scram-password-file")
    for service in list(principals) + list(groups) + list(passwords):
        if service not in table:
            sys.exit(f"acls.py: no service '{service}' in {ACLS.name}; it has {sorted(table)}")
    wanted = bindings(table, principals, groups)

    if args.dry_run:
        for b in wanted:
            print("{} {} {}:{} ({}) {}".format(b[5], b[0], b[1], b[2], b[3], b[4]))
        print(f"{len(wanted)} ACLs for {len(table)} services", file=sys.stderr)
        return
    if not args.bootstrap:
        sys.exit("acls.py: --bootstrap is needed (or --dry-run)")

    from confluent_kafka.admin import (
        AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
        ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
        UserScramCredentialUpsertion,
    )

    config = {"bootstrap.servers": args.bootstrap}
    for key, value in pairs(args.admin_property, "--admin-property").items():
        if key.endswith("-file"):
            key, value = key[: -len("-file")], Path(value).read_text().strip()
        config[key] = value
    admin = AdminClient(config)

    def binding(b):
        principal, resource, name, pattern, op, permission = b
        return AclBinding(ResourceType[resource], name, ResourcePatternType[pattern], principal, "*",
                          AclOperation[op], AclPermissionType[permission])

    failed = False
    if passwords:
        upserts = []
        for service, path in passwords.items():
            user = principals.get(service, f"bluelight-{service}")
            password = Path(path).read_bytes().strip()
            if len(password) < 16:
                sys.exit(f"acls.py: the password in {path} for {service} is shorter than 16 bytes")
            upserts.append(UserScramCredentialUpsertion(
                user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password))
        for user, f in admin.alter_user_scram_credentials(upserts).items():
            try:
                f.result()
                print(f"SCRAM-SHA-512 credentials set for User:{user}")
            except Exception as e:  # noqa: BLE001 - report every user, then fail
                print(f"acls.py: could not set the credentials of User:{user}: {e}", file=sys.stderr)
                failed = True

    for b, f in admin.create_acls([binding(b) for b in wanted]).items():
        try:
            f.result()
        except Exception as e:  # noqa: BLE001
            print(f"acls.py: could not create {b}: {e}", file=sys.stderr)
            failed = True
    print(f"{len(wanted)} ACLs in place for {len(table)} services: {', '.join(table)}")

    # What these principals hold beyond the list.
    keep = {binding(b) for b in wanted}
    extra = []
    for principal in sorted({b[0] for b in wanted}):
        found = admin.describe_acls(AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
            AclOperation.ANY, AclPermissionType.ANY)).result()
        extra += [a for a in found if a not in keep]
    for a in extra:
        print(f"{'deleting' if args.prune else 'not listed in acls.toml'}: {a}")
    if extra and args.prune:
        for f in admin.delete_acls([AclBindingFilter(
                a.restype, a.name, a.resource_pattern_type, a.principal, a.host, a.operation,
                a.permission_type) for a in extra]).values():
            f.result()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
