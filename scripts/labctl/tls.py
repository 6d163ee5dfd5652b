"""The lab's TLS material: a local CA and the web LBs' certificate, made once.

Generated with openssl inside the lab's own HAProxy image (so the host
needs no openssl) into .secrets/tls/ (gitignored). Trust the CA to browse
https://127.0.0.1:8443/ without warnings (see README, "HTTPS"): it can
vouch for localhost and 127.0.0.1 only (name constraints), and its private
key is deleted once the LB's certificate is signed.
"""
import os

from . import containers, progress, settings

TLS_DIR = settings.SECRETS_DIR / "tls"
CA_CERT = TLS_DIR / "ca.crt"
LB_PEM = TLS_DIR / "lb.pem"

_SCRIPT = r"""
set -euo pipefail
cd /out
umask 077
openssl req -x509 -newkey rsa:2048 -sha256 -days 825 -nodes \
    -subj "/O=scalelab/CN=scalelab local CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "nameConstraints=critical,permitted;DNS:localhost,permitted;IP:127.0.0.1/255.255.255.255" \
    -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -sha256 -nodes -subj "/O=scalelab/CN=localhost" \
    -keyout lb.key -out lb.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > lb.ext
openssl x509 -req -in lb.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -sha256 \
    -extfile lb.ext -out lb.crt 2>/dev/null
cat lb.crt lb.key > lb.pem
# The CA's key signs this one certificate and is gone: nobody can use a
# CA that a user was told to trust to sign for another site.
rm -f lb.csr lb.ext ca.srl lb.key ca.key
chmod 644 ca.crt lb.crt lb.pem
chown -R "$OWNER" /out
"""


def ensure():
    """Create the CA and the LB certificate unless they exist."""
    if LB_PEM.exists() and CA_CERT.exists():
        return
    TLS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    containers.client().containers.run(
        settings.image("haproxy"), ["bash", "-c", _SCRIPT], entrypoint=[], remove=True,
        environment={"OWNER": f"{os.getuid()}:{os.getgid()}"},
        volumes={str(TLS_DIR): {"bind": "/out", "mode": "rw"}}, network_mode="none")
    progress.ok(f"generated the lab CA ({CA_CERT.relative_to(settings.ROOT)}) and the LB certificate")
