"""The lab's TLS material: a local CA and the web LBs' certificate, made once.

Generated with openssl inside the lab's own HAProxy image
(haproxy/bin/lab-tls; the host needs no openssl) into .secrets/tls/
(gitignored). Trust the CA to browse https://127.0.0.1:8443/ without
warnings (see README, "HTTPS"): it can
vouch for localhost and 127.0.0.1 only (name constraints), and its private
key is deleted once the LB's certificate is signed.
"""
import os

from . import containers, progress, settings

TLS_DIR = settings.SECRETS_DIR / "tls"
CA_CERT = TLS_DIR / "ca.crt"
LB_PEM = TLS_DIR / "lb.pem"


def ensure():
    """Create the CA and the LB certificate unless they exist."""
    if LB_PEM.exists() and CA_CERT.exists():
        return
    TLS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    containers.sidecar(["lab-tls", "/out"], environment={"OWNER": f"{os.getuid()}:{os.getgid()}"},
                       volumes={str(TLS_DIR): {"bind": "/out", "mode": "rw"}})
    progress.ok(f"generated the lab CA ({CA_CERT.relative_to(settings.ROOT)}) and the LB certificate")
