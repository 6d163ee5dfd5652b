"""`make up` offline: what is already here is used first; the network only for what is missing.

scripts/base-image.sh runs against a stand-in `docker` that records its
calls; labctl.build's wheelhouse against a stand-in pip. No lab needed.
"""
import os
import stat
import subprocess
import textwrap

from labctl import build, settings

SCRIPT = settings.ROOT / "scripts" / "base-image.sh"


def fake_docker(tmp_path, present):
    """Put a `docker` on PATH that knows the images PRESENT and logs every call; return the log path."""
    log = tmp_path / "docker.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        echo "$*" >> {log}
        if [ "$1 $2" = "image inspect" ]; then
            case " {' '.join(present)} " in *" $3 "*) exit 0 ;; esac
            exit 1
        fi
        [ "$1" = pull ] && exit 1
        exit 0
        """))
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    return log, bin_dir


def run_script(bin_dir):
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    env.pop("BASE_IMAGE", None)
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=30, check=False)


def test_the_base_image_built_here_earlier_is_used_without_trying_the_registry(tmp_path):
    log, bin_dir = fake_docker(tmp_path, present=["scalelab/debian:bookworm"])
    r = run_script(bin_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "scalelab/debian:bookworm"
    assert "pull" not in log.read_text(), "an offline make up must not wait for the registry first"


def test_an_official_image_already_here_comes_first(tmp_path):
    log, bin_dir = fake_docker(tmp_path, present=["debian:bookworm-slim", "scalelab/debian:bookworm"])
    r = run_script(bin_dir)
    assert r.stdout.strip() == "debian:bookworm-slim"
    assert "pull" not in log.read_text()


def test_with_no_base_image_the_registry_is_tried_then_debootstrap_is_asked_for(tmp_path):
    log, bin_dir = fake_docker(tmp_path, present=[])
    # Never the real debootstrap from a unit test: a stand-in that fails.
    stub = bin_dir / "debootstrap"
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    r = run_script(bin_dir)
    assert "pull -q debian:bookworm-slim" in log.read_text()
    assert r.returncode != 0 and "debootstrap" in r.stderr


def test_wheels_already_downloaded_for_these_requirements_are_not_downloaded_again(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / ".requirements").write_text((settings.ROOT / "app" / "requirements.txt").read_text())
    monkeypatch.setattr(build, "WHEELS", wheels)

    def no_download(*args, **kwargs):
        raise AssertionError(f"pip ran although the wheels are there: {args}")
    monkeypatch.setattr(build.subprocess, "run", no_download)
    build.wheelhouse()


def test_changed_requirements_download_again(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / ".requirements").write_text("flask==0.1\n")
    monkeypatch.setattr(build, "WHEELS", wheels)
    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(build.subprocess, "run", fake_pip)
    monkeypatch.setattr(build.containers, "client", lambda: type("C", (), {"info": lambda self: {}})())
    build.wheelhouse()
    assert calls and "download" in calls[0]
    assert (wheels / ".requirements").read_text() == (settings.ROOT / "app" / "requirements.txt").read_text()
