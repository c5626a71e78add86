#!/usr/bin/env python3
"""Writes deploy/k8s/{registry,ingest,project,victim-updates,context,gateway,jobs}.yaml.

One pod template for every bluelight service, so each gets the same security context (non-root,
read-only root filesystem, no privilege escalation, every capability dropped, the runtime's
seccomp profile), the same probes (/health/live and /health/ready on its own port) and the same
configuration (the `bluelight-config` ConfigMap). Edit this file, run it, commit both:

    python3 deploy/k8s/generate.py
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = "# Written by deploy/k8s/generate.py; edit that, not this.\n"


def container(name, args, port, resources, env=(), mounts=()):
    c = {
        "name": name,
        "image": "bluelight",
        "args": args + [f"--listen=0.0.0.0:{port}"],
        "envFrom": [{"configMapRef": {"name": "bluelight-config"}}],
        "ports": [{"name": "http", "containerPort": port}],
        "livenessProbe": {
            "httpGet": {"path": "/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "readinessProbe": {
            "httpGet": {"path": "/health/ready", "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if env:
        c["env"] = list(env)
    if mounts:
        c["volumeMounts"] = list(mounts)
    return c


def pod(name, c, volumes=(), grace=60):
    spec = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # SIGTERM first: each service finishes or aborts its open transaction and exits.
        "terminationGracePeriodSeconds": grace,
        "automountServiceAccountToken": False,
        "containers": [c],
    }
    if volumes:
        spec["volumes"] = list(volumes)
    return {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": spec}


def workload(kind, name, replicas, c, volumes=(), extra=None):
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
        "template": pod(name, c, volumes),
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
        spec["podManagementPolicy"] = "Parallel"
    spec.update(extra or {})
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def service(name, port, headless=False):
    spec = {
        "selector": {"app.kubernetes.io/name": name},
        "ports": [{"name": "http", "port": port, "targetPort": "http"}],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def res(cpu_req, mem_req, cpu_lim, mem_lim):
    return {
        "requests": {"cpu": cpu_req, "memory": mem_req},
        "limits": {"cpu": cpu_lim, "memory": mem_lim},
    }


def secret_volume(name, secret, items=None):
    v = {"name": name, "secret": {"secretName": secret, "defaultMode": 0o440}}
    if items:
        v["secret"]["items"] = items
    return v


def mount(name, path):
    return {"name": name, "mountPath": path, "readOnly": True}


POD_NAME = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
AGREEMENTS = {"name": "agreements", "configMap": {"name": "bluelight-agreements"}}

files = {
    "registry.yaml": [
        # One instance: it serves from its copy of `_schemas` and writes through Kafka.
        workload("Deployment", "registry", 1,
                 container("registry", ["registry"], 8081, res("100m", "64Mi", "1", "256Mi"))),
        service("registry", 8081),
    ],
    "ingest.yaml": [
        workload("Deployment", "ingest", 2,
                 container("ingest", ["ingest", "--sources=/etc/bluelight/secrets/sources.toml"],
                           8082, res("250m", "128Mi", "2", "512Mi"),
                           mounts=[mount("tokens", "/etc/bluelight/secrets")]),
                 volumes=[secret_volume("tokens", "bluelight-tokens",
                                        [{"key": "sources.toml", "path": "sources.toml"}])]),
        service("ingest", 8082),
    ],
    # Instances share the canonical topics' partitions (6 each in topics/topics.toml): more
    # replicas than that sit idle. A StatefulSet gives each a stable name, which makes its
    # transactional id, so a restarted pod fences its predecessor's open transaction at once.
    "project.yaml": [
        workload("StatefulSet", "project", 3,
                 container("project",
                           ["project", "--instance=$(POD_NAME)",
                            "--pseudonym-key-file=/etc/bluelight/secrets/pseudonym.key",
                            "--replication-factor=3"],
                           8083, res("500m", "256Mi", "2", "1Gi"), env=[POD_NAME],
                           mounts=[mount("pseudonym", "/etc/bluelight/secrets"),
                                   mount("agreements", "/etc/bluelight/agreements-in-force")]),
                 volumes=[secret_volume("pseudonym", "bluelight-pseudonym"), AGREEMENTS]),
        service("project", 8083, headless=True),
    ],
    "victim-updates.yaml": [
        workload("StatefulSet", "victim-updates", 2,
                 container("victim-updates",
                           ["victim-updates", "--instance=$(POD_NAME)"],
                           8084, res("100m", "128Mi", "1", "512Mi"), env=[POD_NAME])),
        service("victim-updates", 8084, headless=True),
    ],
    # Instances share the subjects by key (6 partitions of repartition.context-contacts.v1); the pod
    # name makes the transactional ids, as for the projector.
    "context.yaml": [
        workload("StatefulSet", "context", 2,
                 container("context",
                           ["context", "--instance=$(POD_NAME)",
                            "--pseudonym-key-file=/etc/bluelight/secrets/pseudonym.key"],
                           8086, res("250m", "256Mi", "2", "1Gi"), env=[POD_NAME],
                           mounts=[mount("pseudonym", "/etc/bluelight/secrets")]),
                 volumes=[secret_volume("pseudonym", "bluelight-pseudonym")]),
        service("context", 8086, headless=True),
    ],
    "gateway.yaml": [
        workload("Deployment", "gateway", 2,
                 container("gateway",
                           ["gateway", "--users=/etc/bluelight/secrets/users.toml",
                            "--ops-target=registry=http://registry:8081",
                            "--ops-target=ingest=http://ingest:8082",
                            "--ops-target=project=http://project:8083",
                            "--ops-target=victim-updates=http://victim-updates:8084",
                            "--ops-target=context=http://context:8086"],
                           8080, res("250m", "256Mi", "2", "1Gi"),
                           mounts=[mount("tokens", "/etc/bluelight/secrets"),
                                   mount("agreements", "/etc/bluelight/agreements-in-force")]),
                 volumes=[secret_volume("tokens", "bluelight-tokens",
                                        [{"key": "users.toml", "path": "users.toml"}]),
                          AGREEMENTS]),
        service("gateway", 8080),
    ],
}


def job(name, args):
    c = container(name, args, 9000, res("100m", "64Mi", "500m", "128Mi"))
    for probe in ("livenessProbe", "readinessProbe", "ports"):
        del c[probe]
    c["args"] = args
    template = pod(name, c)
    template["spec"]["restartPolicy"] = "OnFailure"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 20, "template": template},
    }


# Run once per release: the catalogue's topics, then the canonical schemas (retried until the
# registry answers). Both are idempotent.
files["jobs.yaml"] = [
    job("topics-apply", ["topics", "apply", "--catalogue=/etc/bluelight/topics.toml",
                         "--replication-factor=3"]),
    job("schemas-register", ["schemas", "register"]),
]

for name, docs in files.items():
    # JSON is YAML; one document per resource keeps the diff readable and needs no YAML library.
    text = HEADER + "".join("---\n" + json.dumps(d, indent=2) + "\n" for d in docs)
    (HERE / name).write_text(text)
    print("wrote", HERE / name)
