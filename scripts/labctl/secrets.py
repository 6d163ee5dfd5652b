"""Generated secrets: made on first `make up`, kept in .secrets/ (gitignored)."""
import os
import secrets as pysecrets
import shutil

from . import progress, settings


def ensure():
    """Create every missing secret file; existing ones are kept."""
    # The folder is private to the host user; the files are readable by
    # anyone who can open the folder, because compose bind-mounts them into
    # containers whose processes run as other users (mysql, web).
    settings.SECRETS_DIR.mkdir(mode=0o700, exist_ok=True)
    os.chmod(settings.SECRETS_DIR, 0o700)
    made = []
    for name in settings.SECRETS:
        path = settings.SECRETS_DIR / name
        if not path.exists():
            path.write_text(pysecrets.token_urlsafe(24) + "\n", encoding="utf-8")
            made.append(name)
        os.chmod(path, 0o644)
    if made:
        progress.ok(f"generated secrets in {settings.SECRETS_DIR.name}/: {', '.join(made)}")


def read(name):
    """Return the value of secret NAME."""
    return (settings.SECRETS_DIR / name).read_text(encoding="utf-8").strip()


def remove():
    """Delete every generated secret (make clean)."""
    shutil.rmtree(settings.SECRETS_DIR, ignore_errors=True)
