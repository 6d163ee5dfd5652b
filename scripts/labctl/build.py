"""Build the lab's images from this repository, on a Debian bookworm base.

No image is pulled except the base, and when even that cannot be pulled
(no registry reachable) scripts/base-image.sh makes it with debootstrap.
"""
import subprocess
import sys

import docker

from . import containers, progress, settings

WHEELS = settings.ROOT / "app" / "wheels"


def base_image():
    """Return the base image to build on, making it if needed."""
    out = subprocess.run([str(settings.ROOT / "scripts" / "base-image.sh"), settings.BASE_IMAGE],
                         stdout=subprocess.PIPE, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit("❌ no Debian bookworm base image (see the messages above)")
    return out.stdout.strip()


def wheelhouse():
    """Download the app's wheels on the host, for containers that cannot reach the index.

    Containers here reach the package index only through a TLS-inspecting
    proxy they do not trust, while the host's pip is configured for it. A
    host without the index (or without pip) leaves wheels/ as it is; the
    image then installs from the wheels already there or from the index.
    """
    requirements = settings.ROOT / "app" / "requirements.txt"
    stamp = WHEELS / ".requirements"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == requirements.read_text(encoding="utf-8"):
        progress.ok("the app's Python wheels are already in app/wheels/")
        return
    arch = containers.client().info().get("Architecture", "x86_64")
    platform = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}.get(arch)
    if platform is None:
        progress.step(f"no wheelhouse for architecture {arch}; the image installs from the index")
        return
    progress.step("downloading the app's Python wheels on the host (app/wheels/)")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", "3.11", "--platform", platform,
           "-d", str(WHEELS), "-r", str(settings.ROOT / "app" / "requirements.txt")]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode == 0:
        # What these wheels were downloaded for: the next make up skips the index.
        stamp.write_text(requirements.read_text(encoding="utf-8"), encoding="utf-8")
    else:
        progress.step("could not download wheels on the host; the image build will use "
                      f"{'the wheels already in app/wheels/' if any(WHEELS.glob('*.whl')) else 'the package index'}")


def image(name, base):
    """Build lab image NAME from its folder, printing each build step."""
    tag = settings.image(name)
    context = settings.IMAGES[name]
    progress.step(f"building {tag} from {context.relative_to(settings.ROOT)}/")
    api = containers.client().api
    tail = []
    try:
        for chunk in api.build(path=str(context), tag=tag, buildargs={"BASE_IMAGE": base},
                               rm=True, forcerm=True, decode=True):
            if "error" in chunk:
                raise docker.errors.BuildError(chunk["error"], tail)
            line = chunk.get("stream", "").rstrip()
            if not line:
                continue
            tail = (tail + [line])[-40:]
            if line.startswith("Step "):
                print(f"   {line}", flush=True)
    except docker.errors.BuildError as exc:
        print("\n".join(f"   {l}" for l in tail), file=sys.stderr)
        raise SystemExit(f"❌ building {tag} failed: {exc.msg}") from exc
    progress.ok(f"built {tag}")


def all_images():
    """Build every image of the lab (Docker's layer cache makes repeats quick)."""
    base = base_image()
    wheelhouse()
    for name in settings.IMAGES:
        image(name, base)
