"""Local stand-ins for the base images that deploy/Dockerfile and docker-compose.yml name.

No container registry is reachable here, so each image the files name is built from packages, tagged
with exactly that name, so that the files are used unchanged:

* ``python:3.13-slim``: Debian 13 (trixie, which has Python 3.13) from debootstrap, python3.13 only;
* ``ghcr.io/astral-sh/uv:<pinned>``: ``/uv`` and ``/uvx`` of PyPI's uv of the version the Dockerfile pins;
* ``redis:7``: Debian 12's redis-server (7.0), run as the ``redis`` user in ``/data`` like the real one.

Each carries the label ``dag-workflow-engine.stand-in`` (the recipe's key), which also names it as a
stand-in: a later run keeps an image whose label matches (the cache that keeps the CI step short) and
rebuilds one whose recipe changed. An image of that name without the label is a real one: kept, used.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from podman_host import CommandFailed, podman, run

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
LABEL = "dag-workflow-engine.stand-in"
# Bumped by hand when a recipe below changes in a way its key does not show.
RECIPE_VERSION = "1"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE") or CA_BUNDLE)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Removed from a debootstrapped tree: package caches and lists, documentation, translations.
TRIM = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/log",
)

REDIS_ENTRYPOINT = """\
#!/bin/sh
# Stand-in for the official redis image's entrypoint: a first argument that is an option or a .conf
# file means redis-server; protected mode is off by default (as that image builds redis), so that
# other containers of the network may connect without a password.
set -e
case "${1:-}" in
    -* | *.conf) set -- redis-server "$@" ;;
esac
if [ "${1:-}" = redis-server ]; then
    shift
    if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
        conf=$1
        shift
        set -- "$conf" --protected-mode no "$@"
    else
        set -- --protected-mode no "$@"
    fi
    exec redis-server "$@"
fi
exec "$@"
"""


def qualified(name: str) -> str:
    """The name as Docker resolves it (``redis:7`` -> ``docker.io/library/redis:7``)."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def named_images() -> dict[str, str]:
    """role -> image name, read from the files: the Dockerfile's FROMs and COPY --from, compose's redis."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    bases = set(re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE))
    copied = set(re.findall(r"--from=(\S+/\S+)", text))
    compose = COMPOSE.read_text(encoding="utf-8")
    redis = re.search(r"^  redis:\n(?:    .*\n)*?    image:\s*(\S+)", compose, re.MULTILINE)
    if len(bases) != 1 or len(copied) != 1 or redis is None:
        raise ValueError(f"expected one base, one COPY --from image and a redis image; got {bases} {copied}")
    return {"python": bases.pop(), "uv": copied.pop(), "redis": redis.group(1)}


def apt_mirror() -> str:
    """The Debian mirror apt already uses (deb822 .sources or a one-line sources.list)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in [*sources, Path("/etc/apt/sources.list")]:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        found = re.findall(r"^URIs:\s*(\S+)", text, re.MULTILINE)
        found += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.MULTILINE)
        for uri in found:
            if uri.rstrip("/").endswith("/debian"):
                return uri
    raise ValueError("no Debian mirror found in /etc/apt/sources.list(.d)")


@dataclass(frozen=True)
class StandIn:
    name: str
    key: str
    build: Callable[[str, str, Path], None]  # (qualified name, key, scratch folder)


def _import_tree(tree: Path, name: str, key: str, changes: list[str]) -> None:
    with subprocess.Popen(
        ["tar", "-C", str(tree), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE, start_new_session=True
    ) as tar:
        args = ["podman", "import"]
        for change in [*changes, f"LABEL {LABEL}={key}"]:
            args += ["--change", change]
        run([*args, "-", name], stdin=tar.stdout, timeout=600)
    if tar.returncode != 0:
        raise CommandFailed(f"tar of {tree} exited {tar.returncode}")


def _debootstrap(suite: str, packages: str, tree: Path) -> None:
    run(
        ["debootstrap", "--variant=minbase", f"--include={packages}", suite, str(tree), apt_mirror()],
        timeout=1800,
    )
    for part in TRIM:
        target = tree / part
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def build_python(name: str, key: str, scratch: Path) -> None:
    tree = scratch / "rootfs"
    _debootstrap("trixie", "python3.13,ca-certificates", tree)
    # The official image's interpreter answers to python, python3 and python3.13 on PATH.
    for alias in ("python", "python3"):
        (tree / "usr/local/bin" / alias).symlink_to("/usr/bin/python3.13")
    # The build's `uv sync` downloads from PyPI: the stand-in trusts the certificates this host trusts
    # (a TLS-inspecting proxy's included), and tells uv where they are, as the host's environment does.
    shutil.copyfile(HOST_CA_BUNDLE, tree / CA_BUNDLE.relative_to("/"))
    changes = [f"ENV PATH={PATH}", "ENV LANG=C.UTF-8", f"ENV SSL_CERT_FILE={CA_BUNDLE}", 'CMD ["python3"]']
    _import_tree(tree, name, key, changes)


def build_redis(name: str, key: str, scratch: Path) -> None:
    tree = scratch / "rootfs"
    _debootstrap("bookworm", "redis-server", tree)
    (tree / "data").mkdir()
    run(["chroot", str(tree), "chown", "redis:redis", "/data"])
    entrypoint = tree / "usr/local/bin/docker-entrypoint.sh"
    entrypoint.write_text(REDIS_ENTRYPOINT, encoding="utf-8")
    entrypoint.chmod(0o755)
    changes = [
        f"ENV PATH={PATH}",
        "USER redis",
        "WORKDIR /data",
        "VOLUME /data",
        "EXPOSE 6379",
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        'CMD ["redis-server"]',
    ]
    _import_tree(tree, name, key, changes)


def uv_version(name: str) -> str:
    return name.rsplit(":", 1)[1]


def build_uv(name: str, key: str, scratch: Path) -> None:
    """The uv image is FROM scratch with the two binaries at the root; PyPI's wheel has the same two."""
    target = scratch / "wheel"
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    run([uv, "pip", "install", "--quiet", "--target", str(target), f"uv=={uv_version(name)}"], timeout=600)
    tree = scratch / "rootfs"
    tree.mkdir()
    for binary in ("uv", "uvx"):
        shutil.copy2(target / "bin" / binary, tree / binary)
    _import_tree(tree, name, key, ['CMD ["/uv"]'])


RECIPES: dict[str, Callable[[str, str, Path], None]] = {
    "python": build_python,
    "uv": build_uv,
    "redis": build_redis,
}


def recipe_key(role: str, name: str) -> str:
    """Changes with the image name, the recipe's function or RECIPE_VERSION (bumped for the helpers)."""
    source = inspect.getsource(RECIPES[role]) + (REDIS_ENTRYPOINT if role == "redis" else "")
    return hashlib.sha256(f"{RECIPE_VERSION}|{name}|{source}".encode()).hexdigest()[:16]


def _unmount_under(folder: Path) -> None:
    """debootstrap mounts /proc and /sys in its tree; a failed one may leave them: never delete into them."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{folder}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, start_new_session=True)


def current_label(name: str) -> str | None:
    """The image's stand-in label: '' for an image without it (a real one), None when absent."""
    try:
        out = podman("image", "inspect", "--format", f'{{{{index .Labels "{LABEL}"}}}}', name)
    except CommandFailed:
        return None
    value = out.strip()
    return "" if value in ("", "<no value>") else value


def ensure_standins(log: Callable[[str], None] = print) -> dict[str, str]:
    """Build whatever stand-in is missing or stale; return role -> qualified image name."""
    images: dict[str, str] = {}
    for role, raw in named_images().items():
        if role not in RECIPES:
            raise ValueError(f"no stand-in recipe for {raw}")
        name = qualified(raw)
        images[role] = name
        key = recipe_key(role, name)
        label = current_label(name)
        if label == "" or label == key:
            log(f"stand-in {name}: {'real image' if label == '' else 'cached'}")
            continue
        log(f"stand-in {name}: building")
        scratch = Path(tempfile.mkdtemp(prefix="dag-standin-", dir="/var/tmp"))
        try:
            RECIPES[role](name, key, scratch)
        finally:
            _unmount_under(scratch)
            shutil.rmtree(scratch, ignore_errors=True)
    return images
