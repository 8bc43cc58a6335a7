"""The image and the Kubernetes recipe (Dockerfile, deploy/k8s) are valid offline and agree with each other.

Every manifest validates against the Kubernetes schemas kubernetes-validate ships (strict: no unknown
field); the ConfigMap's locust.conf parses with Locust's own config parser and every key in it is a
real option (each ``lp-*`` one the harness's own); the master's and the workers' arguments parse the
way Locust parses them in the pod (that file mounted, the target's environment set) into valid
settings; the image, the ports, the Service, the probes and the security settings agree with the
Dockerfile; and the Dockerfile installs the project with the README's install command. No network,
no docker daemon, no cluster.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from locust import argument_parser

from harness.options import add_arguments
from harness.reports import tomlfile
from harness.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
HELM_VALUES = K8S / "helm" / "locust-values.yaml"
MANIFESTS = sorted(K8S.glob("*.yaml"))
# The oldest Kubernetes the recipe is checked against, and the newest whose schemas are installed.
KUBERNETES_VERSIONS = ("1.28", kubernetes_validate.latest_version())
CONF_MAP, CONF_KEY = "lp-harness-conf", "locust.conf"
WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]")  # listen on every interface of the pod
Doc = dict[str, Any]


# --- reading the files ---------------------------------------------------------------------------------------------


def manifests() -> list[tuple[str, Doc]]:
    """Every document of every deploy/k8s/*.yaml, with its file name."""
    return [(path.name, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(kind: str, name: str) -> Doc:
    """The one manifest of this kind and name."""
    found = [doc for _, doc in manifests() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} manifests"
    return found[0]


def deployment(component: str) -> Doc:
    """The Deployment whose pods carry app.kubernetes.io/component=<component>."""
    found = [
        doc
        for _, doc in manifests()
        if doc["kind"] == "Deployment"
        and doc["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"{len(found)} {component} Deployments"
    return found[0]


def pod(doc: Doc) -> Doc:
    return doc["spec"]["template"]["spec"]


def container(doc: Doc) -> Doc:
    (only,) = pod(doc)["containers"]
    return only


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, rest), continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, rest = (pending + line).strip().partition(" ")
        out.append((instruction.upper(), rest.strip()))
        pending = ""
    return out


def docker(instruction: str) -> list[str]:
    return [rest for name, rest in dockerfile() if name == instruction]


def docker_labels() -> dict[str, str]:
    labels: dict[str, str] = {}
    for rest in docker("LABEL"):
        for item in shlex.split(rest):
            key, _, value = item.partition("=")
            labels[key] = value
    return labels


def docker_uid() -> int:
    (user,) = docker("USER")
    return int(user.split(":")[0])


def entrypoint_locust_args() -> list[str]:
    """What the image's entrypoint gives locust before the container's own arguments (``-f locustfile.py``)."""
    (entry,) = docker("ENTRYPOINT")
    script = json.loads(entry)
    assert script[:2] == ["/bin/sh", "-c"], script
    found = re.search(r'exec locust (.*?)\s*"\$@"', script[2])
    assert found, script[2]
    return shlex.split(found.group(1))


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (``500m``, ``1``, ``1536Mi``, ``1Gi``) as a number of cores or bytes."""
    text = str(value)
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?", text)
    assert found, f"{text!r} is not a quantity"
    scale = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    scale.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})
    return float(found.group(1)) * scale[found.group(2)]


def locust_conf() -> str:
    return find("ConfigMap", CONF_MAP)["data"][CONF_KEY]


def config_items(path: Path) -> dict[str, Any]:
    """A config file's settings, read by the parser Locust reads its config files with."""
    with path.open() as stream:
        return dict(argument_parser.LocustConfigParser().parse(stream))


def option_names(parser: Any) -> set[str]:
    return {opt[2:] for action in parser._actions for opt in action.option_strings if opt.startswith("--")}


def harness_options() -> set[str]:
    """The long options (without ``--``) the harness itself declares."""
    parser = argument_parser.get_empty_argument_parser(add_help=False, default_config_files=[])
    add_arguments(parser)
    return option_names(parser)


def full_parser() -> Any:
    """Locust's parser with the harness's options, as the locustfile registers them (no default config files)."""
    parser = argument_parser.get_parser(default_config_files=[])
    if "lp-account" not in option_names(parser):  # (already there when some test imported the locustfile)
        add_arguments(parser)
    return parser


def container_env(doc: Doc) -> dict[str, str]:
    """The environment a container gets from its ConfigMaps (envFrom) and its own env values."""
    env: dict[str, str] = {}
    for source in container(doc).get("envFrom", []):
        if "configMapRef" in source:
            env.update(find("ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({item["name"]: item["value"] for item in container(doc).get("env", []) if "value" in item})
    return env


def parse_in_pod(doc: Doc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """The container's options as Locust parses them in the pod: the image's entrypoint, the container's
    arguments with the ConfigMap's locust.conf at its mount path, the environment of the pod."""
    conf = tmp_path / CONF_KEY
    conf.write_text(locust_conf())
    volumes = {v["name"]: v for v in pod(doc).get("volumes", [])}
    mounted = [
        m["mountPath"]
        for m in container(doc).get("volumeMounts", [])
        if volumes[m["name"]].get("configMap", {}).get("name") == CONF_MAP
    ]
    assert len(mounted) == 1, f"{doc['metadata']['name']} mounts {CONF_MAP} {len(mounted)} times"
    in_pod = str(PurePosixPath(mounted[0]) / CONF_KEY)
    args = [str(conf) if a == in_pod else a for a in container(doc)["args"]]
    assert str(conf) in args, f"{doc['metadata']['name']} does not read {in_pod} (--config)"
    for key in list(os.environ):
        if key.startswith(("LP_", "LOCUST_")):
            monkeypatch.delenv(key)
    for key, value in container_env(doc).items():
        monkeypatch.setenv(key, value)
    return full_parser().parse_args([*entrypoint_locust_args(), *args])


def port_number(doc: Doc, port: int | str) -> int:
    """A container port given by number or by name, as a number (it must be declared)."""
    ports = {p["name"]: p["containerPort"] for p in container(doc).get("ports", [])}
    number = ports.get(port, port) if isinstance(port, str) else port
    assert number in ports.values(), f"port {port!r} is not a port of {doc['metadata']['name']}"
    return int(number)


# --- the manifests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_offline(version: str) -> None:
    assert MANIFESTS, "no manifests in deploy/k8s"
    problems = []
    for name, doc in manifests():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{name}: {doc['kind']} {doc['metadata']['name']}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:  # a kind it cannot check is not a valid manifest
            problems.append(f"{name}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_locust_conf_keys_are_real_options(tmp_path: Path) -> None:
    conf = tmp_path / CONF_KEY
    conf.write_text(locust_conf())
    keys, ours, known = list(config_items(conf)), harness_options(), option_names(full_parser())
    assert any(key.startswith("lp-") for key in keys)
    for key in keys:
        if key.startswith("lp-"):
            assert key in ours, f"{CONF_KEY}: {key!r} is not an option of the harness (harness/options.py)"
        else:
            assert key in known, f"{CONF_KEY}: {key!r} is not a Locust option"


def test_environment_names_are_real_options() -> None:
    """A misspelt LP_* or LOCUST_* variable would be ignored without a word: each must be an option's."""
    known = {action.env_var for action in full_parser()._actions if getattr(action, "env_var", None)}
    for component in ("master", "worker"):
        for name in container_env(deployment(component)):
            if name.startswith(("LP_", "LOCUST_")):
                assert name in known, f"{component}: {name} is no option's environment variable"


@pytest.mark.parametrize("component", ["master", "worker"])
def test_pods_parse_into_valid_settings(component: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options = parse_in_pod(deployment(component), tmp_path, monkeypatch)
    assert (options.master, options.worker) == (component == "master", component == "worker")
    settings = Settings.from_options(options)  # raises SettingsError naming the setting
    target = find("ConfigMap", "lp-harness-target")["data"]
    assert settings.account == target["LP_ACCOUNT"]
    for key, value in config_items(tmp_path / CONF_KEY).items():
        if key.startswith("lp-"):  # the file's settings reach the options: no environment variable overrides them
            parsed = getattr(options, key.replace("-", "_"))
            want = value.lower() in ("true", "yes", "on", "1") if isinstance(parsed, bool) else value
            assert (parsed if isinstance(parsed, bool) else str(parsed)) == want, key


def test_workers_reach_the_master_through_the_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master, worker = deployment("master"), deployment("worker")
    master_options = parse_in_pod(master, tmp_path, monkeypatch)
    worker_options = parse_in_pod(worker, tmp_path, monkeypatch)
    service = find("Service", worker_options.master_host)
    selector = service["spec"]["selector"]
    labels = master["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items(), "the Service does not select the master"
    assert not selector.items() <= worker["spec"]["template"]["metadata"]["labels"].items(), "it selects workers"
    ports = {p["port"]: port_number(master, p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports.get(worker_options.master_port) == master_options.master_bind_port
    assert master_options.web_port in ports.values(), "the web UI is not behind the Service"
    probe = container(master)["readinessProbe"]["httpGet"]
    assert port_number(master, probe["port"]) == master_options.web_port


def test_ports_agree_with_the_dockerfile() -> None:
    exposed = {int(p.split("/")[0]) for rest in docker("EXPOSE") for p in rest.split()}
    assert exposed == {p["containerPort"] for p in container(deployment("master"))["ports"]}


def test_prometheus_scrapes_the_masters_metrics_port() -> None:
    master = deployment("master")
    annotations = master["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"
    host, _, port = container_env(master)["LP_PROMETHEUS_PORT"].rpartition(":")
    assert host in WILDCARD_HOSTS, "a bare port (or a loopback host) is out of Prometheus's reach"
    assert annotations["prometheus.io/port"] == port
    port_number(master, int(port))
    assert "LP_PROMETHEUS_PORT" not in container_env(deployment("worker")), "/metrics is the master's"


def test_one_image_everywhere_named_as_the_dockerfile_labels_it() -> None:
    labels = docker_labels()
    version = tomlfile.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    image = f"{labels['org.opencontainers.image.title']}:{version}"
    for name, doc in manifests():
        if doc["kind"] == "Deployment":
            for item in pod(doc)["containers"]:
                assert item["image"] == image, f"{name}: {item['image']}"
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert f"{values['image']['repository']}:{values['image']['tag']}" == image


def test_pods_run_as_the_images_user_without_privileges() -> None:
    uid = docker_uid()
    assert uid != 0
    for name, doc in manifests():
        if doc["kind"] != "Deployment":
            continue
        context = pod(doc)["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == uid, name
        mounts = {m["mountPath"] for item in pod(doc)["containers"] for m in item.get("volumeMounts", [])}
        for item in pod(doc)["containers"]:
            own = item["securityContext"]
            assert own["allowPrivilegeEscalation"] is False, name
            assert "ALL" in own["capabilities"]["drop"], name
            if own.get("readOnlyRootFilesystem"):
                assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


def test_reports_folder_is_writable_on_the_master(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master = deployment("master")
    options = parse_in_pod(master, tmp_path, monkeypatch)
    (workdir,) = docker("WORKDIR")
    reports = PurePosixPath(workdir) / options.lp_reports_dir  # (an absolute path stays as it is)
    volumes = {v["name"]: v for v in pod(master)["volumes"]}
    writable = {
        m["mountPath"]
        for m in container(master)["volumeMounts"]
        if not m.get("readOnly") and ({"emptyDir", "persistentVolumeClaim"} & volumes[m["name"]].keys())
    }
    assert str(reports) in writable, f"{reports} is not a writable volume of the master"


def test_resources_are_sized() -> None:
    """Requests and limits everywhere; a worker is one Locust process, one gevent loop: one core, no more."""
    for name, doc in manifests():
        if doc["kind"] != "Deployment":
            continue
        for item in pod(doc)["containers"]:
            resources = item["resources"]
            for kind in ("cpu", "memory"):
                request, limit = resources["requests"][kind], resources["limits"][kind]
                assert quantity(request) <= quantity(limit), f"{name}: {kind} request over its limit"
    worker = container(deployment("worker"))["resources"]
    assert quantity(worker["limits"]["cpu"]) == quantity(worker["requests"]["cpu"]) == 1


# --- the image -------------------------------------------------------------------------------------------------------


def install_commands(commands: list[str]) -> set[str]:
    """The ``pip install ...`` ones among these commands, whitespace normalised."""
    return {" ".join(cmd.split()) for cmd in commands if re.match(r"(python3? -m )?pip install\b", cmd.strip())}


def test_the_dockerfile_installs_as_the_readme_says() -> None:
    readme = (ROOT / "README.md").read_text()
    spans = re.findall(r"`([^`\n]+)`", readme) + [
        line for block in re.findall(r"```[a-z]*\n(.*?)```", readme, re.S) for line in block.splitlines()
    ]
    stated = install_commands(spans)
    built = install_commands(docker("RUN"))
    assert stated, "the README states no install command"
    assert built == stated, f"Dockerfile installs with {sorted(built)}, the README says {sorted(stated)}"
    (base,) = docker("FROM")
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base), base
    assert entrypoint_locust_args() == ["-f", "locustfile.py"]
    assert "ulimit -n" in json.loads(docker("ENTRYPOINT")[0])[2], "the entrypoint raises the open-file limit"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context (its own patterns: no ``!`` exceptions)."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(_matches(c, p) for c in candidates for p in patterns)


def _matches(path: str, pattern: str) -> bool:
    if pattern.startswith("**/"):  # at any depth, the top included
        rest = pattern[3:]
        return fnmatch.fnmatch(path, rest) or fnmatch.fnmatch(path, "*/" + rest)
    # (fnmatch's * also crosses "/": a needed path is, if anything, seen as left out too readily)
    return fnmatch.fnmatch(path, pattern)


def test_dockerignore_keeps_what_the_build_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip().strip("/") for p in lines if p.strip() and not p.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "exceptions are not what this test reads"
    (cmd,) = docker("CMD")
    conf = json.loads(cmd)[json.loads(cmd).index("--config") + 1]
    for needed in ("pyproject.toml", "README.md", "locustfile.py", "harness/user/locustfile.py", "scenarios", conf):
        assert (ROOT / needed).exists(), needed
        assert not dockerignored(needed, patterns), f".dockerignore leaves out {needed}"
    for heavy in (".git", ".venv", "tests", "harness/__pycache__"):
        assert dockerignored(heavy, patterns), f".dockerignore keeps {heavy}"


# --- the Helm chart's values -----------------------------------------------------------------------------------------


def test_helm_values_match_the_manifests() -> None:
    """Delivery Hero's chart: its Service is named fullnameOverride and serves 8089 and 5557 (its templates)."""
    values = yaml.safe_load(HELM_VALUES.read_text())
    master, worker = deployment("master"), deployment("worker")
    conf_mount = next(m["mountPath"] for m in container(master)["volumeMounts"] if m["name"] == "conf")
    assert values["extraConfigMaps"] == {CONF_MAP: conf_mount}
    for part in ("master", "worker"):
        assert values[part]["command"] == [], "the image's entrypoint (locust -f locustfile.py) runs"
        args = container(deployment(part))["args"]  # the chart puts --master / --worker first itself
        assert args[0] == f"--{part}" and args[-2:] == values[part]["args"], part
        assert values[part]["resources"] == container(deployment(part))["resources"]
        mounts = {m["mountPath"] for m in container(deployment(part))["volumeMounts"]} - {conf_mount}
        assert {m["mountPath"] for m in values[part]["extraVolumeMounts"]} == mounts, part
    assert values["worker"]["environment"]["LOCUST_MASTER_NODE_HOST"] == values["fullnameOverride"]
    assert values["worker"]["environment"]["LOCUST_MASTER_NODE_PORT"] == "5557"
    assert values["worker"]["replicas"] == worker["spec"]["replicas"]
    assert values["podSecurityContext"]["runAsUser"] == docker_uid()
    assert values["master"]["environment"] == {
        k: v for k, v in container_env(master).items() if k == "LP_PROMETHEUS_PORT"
    }
    assert values["master"]["annotations"] == master["spec"]["template"]["metadata"]["annotations"]
    assert values["loadtest"]["environment"] == find("ConfigMap", "lp-harness-target")["data"]
