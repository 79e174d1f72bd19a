"""The example KubeRay manifest (deploy/kuberay/raycluster.yaml) says what docs/kubernetes.md
says: an on-demand head that runs no attempt, spot worker groups that declare the resources
evalfleet tasks ask for, and Ray start parameters that agree with the pods' resources."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import evalfleet
from evalfleet.execution.ray_backend import fits, ray_shape

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy" / "kuberay" / "raycluster.yaml"
SPOT = ("karpenter.sh/capacity-type", "spot")


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    return doc


def _containers(group: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = group["template"]["spec"]["containers"]
    assert out, "a group without a container"
    return out


def _node_resources(group: dict[str, Any]) -> dict[str, float]:
    """What the group's Ray nodes declare, from rayStartParams, by Ray name."""
    params = group["rayStartParams"]
    assert all(isinstance(v, str) for v in params.values()), "KubeRay wants string values"
    res: dict[str, float] = {"CPU": float(params["num-cpus"]),
                             "GPU": float(params.get("num-gpus", "0"))}
    if "resources" in params:
        # KubeRay passes the value to `ray start --resources=...` as is: a quoted JSON object
        raw = params["resources"]
        assert raw.startswith('"') and raw.endswith('"'), raw
        custom = json.loads(json.loads(raw))
        assert all(isinstance(v, int | float) and v > 0 for v in custom.values()), custom
        res.update({k: float(v) for k, v in custom.items()})
    return res


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_head_is_on_demand_and_runs_no_attempt(cluster: dict[str, Any]) -> None:
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # attempts never land on the head
    spec = head["template"]["spec"]
    assert spec["nodeSelector"]["karpenter.sh/capacity-type"] == "on-demand"
    assert not any(t.get("value") == "spot" for t in spec.get("tolerations", []))


def test_workers_are_spot_and_autoscaled(cluster: dict[str, Any]) -> None:
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    groups = spec["workerGroupSpecs"]
    assert {g["groupName"] for g in groups} == {"cpu-spot", "gpu-spot"}
    for g in groups:
        pod = g["template"]["spec"]
        assert pod["nodeSelector"][SPOT[0]] == SPOT[1]
        assert any(t["key"] == SPOT[0] and t["value"] == SPOT[1] and t["effect"] == "NoSchedule"
                   for t in pod["tolerations"])
        # at least one node of each group stays up: the Ray backend checks at start that a
        # node alive declares each resource a task asks for (gpu, docker)
        assert 1 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]


def test_ray_start_params_agree_with_the_pods(cluster: dict[str, Any]) -> None:
    for g in cluster["spec"]["workerGroupSpecs"]:
        node = _node_resources(g)
        [c] = _containers(g)
        limits = c["resources"]["limits"]
        assert c["resources"]["requests"] == limits  # Guaranteed QoS: nothing overcommitted
        assert node["CPU"] == _cpu(str(limits["cpu"])), g["groupName"]
        assert node["GPU"] == float(limits.get("nvidia.com/gpu", 0)), g["groupName"]
        if node["GPU"]:  # a GPU pod is scheduled only on GPU nodes, which are tainted
            pod = g["template"]["spec"]
            assert pod["nodeSelector"].get("nvidia.com/gpu.present") == "true"
            assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])


@pytest.mark.parametrize("needs", [{}, {"gpu": 1}, {"docker": 1}, {"gpu": 1, "cpu": 4},
                                   {"docker": 2, "cpu": 2}])
def test_every_task_shape_fits_a_worker_group(cluster: dict[str, Any],
                                              needs: dict[str, int]) -> None:
    nodes = {g["groupName"]: _node_resources(g) for g in cluster["spec"]["workerGroupSpecs"]}
    names = {k for res in nodes.values() for k in res}
    shape = ray_shape(needs, names)  # what the Ray backend asks Ray for
    fitting = {name for name, res in nodes.items() if fits(shape, res) >= 1}
    if not shape:  # general attempts: every worker group takes them
        assert all(res["CPU"] > 0 for res in nodes.values())
        return
    assert fitting, f"no worker group holds {shape}"
    if needs.get("gpu"):  # a GPU task lands only where a GPU is declared
        assert all(nodes[n]["GPU"] >= 1 for n in fitting) and fitting == {"gpu-spot"}
    else:
        assert "cpu-spot" in fitting


def test_image_tag_is_the_package_version_and_ray_version(cluster: dict[str, Any]) -> None:
    ray_version = cluster["spec"]["rayVersion"]
    images = [c["image"] for c in _containers(cluster["spec"]["headGroupSpec"])]
    for g in cluster["spec"]["workerGroupSpecs"]:
        images += [c["image"] for c in _containers(g)]
    assert len(set(images)) == 1, "head and workers must run the same image"
    m = re.fullmatch(r"[\w./-]+/evalfleet:(?P<ev>[^-]+)-ray(?P<ray>[\d.]+)", images[0])
    assert m, images[0]
    assert m["ev"] == evalfleet.__version__  # bump the manifest with the package
    assert m["ray"] == ray_version
    extra = tomllib_extra("ray")
    lo = re.search(r">=([\d.]+)", extra)
    assert lo and tuple(map(int, ray_version.split("."))) >= tuple(map(int, lo[1].split(".")))


def tomllib_extra(name: str) -> str:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [spec] = [s for s in data["project"]["optional-dependencies"][name] if s.startswith("ray")]
    return str(spec)
